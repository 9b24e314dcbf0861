"""What a fault report is: its states, who may move it between them, and the rules a
resident's report must keep. No SQL here (that is :mod:`reports.store`) and nothing
council-specific (that is :mod:`reports.categories`, read from configuration).

States follow FixMyStreet's, with "fixed" and "closed" distinct (residents keep asking
for that): *fixed* means the council did the work; *closed* means the council stopped
working on it for another reason (e.g. inspected, nothing to do).
"""

import re
from datetime import datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    ACTION_SCHEDULED = "action_scheduled"
    IN_PROGRESS = "in_progress"
    FIXED = "fixed"
    CLOSED = "closed"
    DUPLICATE = "duplicate"
    NOT_RESPONSIBLE = "not_responsible"
    UNABLE_TO_FIX = "unable_to_fix"

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def is_open(self) -> bool:
        """Still being worked on (Open311 status ``open``); the rest are ``closed``."""
        return self in OPEN_STATES


LABELS = {
    State.OPEN: "Open",
    State.INVESTIGATING: "Investigating",
    State.ACTION_SCHEDULED: "Action scheduled",
    State.IN_PROGRESS: "In progress",
    State.FIXED: "Fixed",
    State.CLOSED: "Closed",
    State.DUPLICATE: "Duplicate",
    State.NOT_RESPONSIBLE: "Not the council's responsibility",
    State.UNABLE_TO_FIX: "Unable to fix",
}
OPEN_STATES = frozenset(
    {State.OPEN, State.INVESTIGATING, State.ACTION_SCHEDULED, State.IN_PROGRESS}
)
_WORKING = OPEN_STATES | {State.FIXED, State.CLOSED, State.NOT_RESPONSIBLE, State.UNABLE_TO_FIX}

# Staff moves. "duplicate" is reached only through reports.store.mark_duplicate (it needs
# the report it duplicates); leaving it clears the link.
STAFF_TRANSITIONS: dict[State, frozenset[State]] = {
    **{state: _WORKING - {state} for state in OPEN_STATES},
    State.FIXED: frozenset({State.CLOSED, State.OPEN, State.IN_PROGRESS}),
    State.CLOSED: frozenset({State.OPEN, State.FIXED}),
    State.NOT_RESPONSIBLE: frozenset({State.OPEN, State.CLOSED}),
    State.UNABLE_TO_FIX: frozenset({State.OPEN, State.CLOSED}),
    State.DUPLICATE: frozenset({State.OPEN}),
}
# What a resident may do with their secret link: reopen a report marked fixed, within
# REOPEN_WINDOW of the fix.
REOPEN_WINDOW = timedelta(weeks=8)

MAX_PHOTOS = 3
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_TITLE = 120
MAX_DESCRIPTION = 5000
MAX_UPDATE = 5000
NEARBY_METRES = 50  # "Is this it?": open reports of the same category this close
ASSET_SNAP_METRES = 30  # a dropped pin takes the nearest asset this close
PUBLIC_GRID_M = 10  # public coordinates are snapped to this grid (see migration 0007)


class TransitionError(ValueError):
    """A move the rules do not allow; the message says why, for the person who asked."""


def check_staff_transition(current: State, new: State) -> None:
    if new == State.DUPLICATE:
        raise TransitionError("Mark a report as a duplicate of another one instead.")
    if new not in STAFF_TRANSITIONS[current]:
        raise TransitionError(f"A report that is {current.label.lower()} cannot become {new}.")


def can_reopen(state: State, fixed_at: datetime | None, now: datetime) -> bool:
    """The reporter may reopen a fixed report within eight weeks of the fix."""
    return state == State.FIXED and fixed_at is not None and now - fixed_at <= REOPEN_WINDOW


def reporter_may_update(state: State, fixed_at: datetime | None, now: datetime) -> bool:
    """The reporter may add an update while the report is open, or within the reopen
    window after it was fixed."""
    return state.is_open or can_reopen(state, fixed_at, now)


# Personal details typed into the text, which would then be published: a warning before
# submit (FixMyStreet's users ask for it), never a refusal.
EMAIL_LIKE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
PHONE_LIKE = re.compile(r"(?<!\d)(?:\+44\s?|0)(?:\d[\s-]?){9,10}(?!\d)")


def personal_details_in(text: str) -> list[str]:
    """What in ``text`` looks like contact details: 'an email address', 'a phone number'."""
    found = []
    if EMAIL_LIKE.search(text):
        found.append("an email address")
    if PHONE_LIKE.search(text):
        found.append("a phone number")
    return found
