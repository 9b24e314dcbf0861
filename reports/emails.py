"""The text of the emails reports send (plain text: no HTML to escape, nothing to track).

Each function returns (subject, body); :func:`reports.store.queue_email` puts them in
the outbox in the transaction of the change they announce.
"""

from reports.domain import State


def confirmation(reference: str, title: str, link: str, category: str) -> tuple[str, str]:
    """To the reporter when a report is made: its reference and their secret link."""
    return (
        f"Your report {reference} has been received",
        f"Thank you for your report.\n\n"
        f"Reference: {reference}\nProblem: {category}\nTitle: {title}\n\n"
        f"Follow it, add an update, or reopen it within 8 weeks of it being fixed, here:\n"
        f"{link}\n\n"
        f"Keep this link to yourself: anyone who has it can update your report.\n",
    )


def state_changed(reference: str, title: str, state: State, note: str | None) -> tuple[str, str]:
    """To subscribers when a report changes state."""
    body = f"Report {reference} ({title}) is now: {state.label}.\n"
    if note:
        body += f"\n{note}\n"
    return f"Report {reference}: {state.label.lower()}", body


def updated(reference: str, title: str, update: str) -> tuple[str, str]:
    """To subscribers when the council adds a public update."""
    return f"Report {reference}: an update", f"Report {reference} ({title}):\n\n{update}\n"
