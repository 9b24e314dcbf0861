"""Sending the email outbox: rows that :func:`reports.store.queue_email` wrote in the
transaction of the change they announce, sent by SMTP from a worker.

Each row is claimed with ``FOR UPDATE SKIP LOCKED``, so several workers never send the
same email twice; a failure keeps the row with its error and tries again later, waiting
longer each time, up to :data:`MAX_ATTEMPTS`.
"""

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mapserver.settings import Settings

log = logging.getLogger(__name__)

BATCH = 50
MAX_ATTEMPTS = 8  # then the row stays unsent, with its last error, for staff to see
SMTP_TIMEOUT_S = 20

CLAIM = """
SELECT id, to_address, subject, body, attempts FROM app.email_outbox
WHERE sent_at IS NULL AND attempts < :max AND next_attempt_at <= now()
ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED
"""
SENT = "UPDATE app.email_outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = :id"
# Back off 1, 2, 4 … minutes (capped at a day) after each failure.
FAILED = """
UPDATE app.email_outbox SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = now() + least(interval '1 minute' * power(2, attempts), interval '1 day')
WHERE id = :id
"""


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    message.set_content(body)
    return message


def _connect(settings: Settings) -> smtplib.SMTP:
    assert settings.smtp_host
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S)
    if settings.smtp_starttls:
        smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_user:
        smtp.login(settings.smtp_user, settings.smtp_password or "")
    return smtp


def run_once(engine: Engine, settings: Settings) -> int:
    """Send the emails that are due, one SMTP connection for the batch; returns how many
    were sent. Without ``smtp_host`` nothing is sent (the outbox keeps them)."""
    if not settings.smtp_host:
        return 0
    sent = 0
    with engine.begin() as conn:
        rows = conn.execute(text(CLAIM), {"max": MAX_ATTEMPTS, "batch": BATCH}).all()
        if not rows:
            return 0
        try:
            smtp = _connect(settings)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("SMTP server %s unreachable: %s", settings.smtp_host, exc)
            for row in rows:
                conn.execute(text(FAILED), {"id": row.id, "error": f"connect: {exc}"[:500]})
            return 0
        with smtp:
            for row in rows:
                try:
                    smtp.send_message(_message(settings, row.to_address, row.subject, row.body))
                except (OSError, smtplib.SMTPException) as exc:
                    conn.execute(text(FAILED), {"id": row.id, "error": str(exc)[:500]})
                    continue
                conn.execute(text(SENT), {"id": row.id})
                sent += 1
    return sent


def pending(engine: Engine) -> int:
    """Emails waiting to be sent (for the status page and metrics)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM app.email_outbox WHERE sent_at IS NULL")
        ).scalar_one()
