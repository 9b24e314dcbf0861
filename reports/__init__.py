"""Residents' fault reports (street lights, blocked drains, flooding…), built like
FixMyStreet and speaking Open311 later.

- :mod:`reports.domain`: states, allowed transitions, rules (reopen window, limits).
- :mod:`reports.categories`: a council's categories from ``layers/<council>/reports.yml``.
- :mod:`reports.store`: every SQL statement on the reports tables (migration 0007); the
  caller holds the transaction, so a change and the emails it causes commit together.
- :mod:`reports.emails`: the text of those emails (queued in ``app.email_outbox``).
- :mod:`reports.photos`: photos made safe (decoded, re-encoded, no EXIF) and the
  pluggable photo store (local folder or S3-compatible).
- :mod:`reports.service`: what the routes share (the council's service, validation,
  location checks, photos written before the commit); :mod:`reports.limits`: per
  address and per device limits.
- :mod:`reports.api` (JSON) and :mod:`reports.pages` (HTML): the routes.
"""
