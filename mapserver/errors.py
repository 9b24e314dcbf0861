"""Errors meant for people: one message that says what happened and what to do.

The CLI prints these without a traceback; anything else is a bug.
"""


class ServiceError(Exception):
    """A problem the operator can fix (port in use, database unreachable, bad input)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  {self.hint}" if self.hint else text
