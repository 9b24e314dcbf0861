"""The email outbox sent by SMTP to a real local SMTP server (aiosmtpd): due rows are
sent once, failures are kept with their error and retried later."""

from aiosmtpd.controller import Controller
from sqlalchemy import text

from reports import outbox, store
from tests.conftest import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


def _queue(engine, to: str) -> int:
    with engine.begin() as conn:
        return store.queue_email(conn, to, "Your report", "Thank you.", "confirmation", None)


def test_due_emails_are_sent_once(engine, settings):
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        configured = settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False,
                    "smtp_from": "reports@stockport.example"}
        )  # fmt: skip
        first = _queue(engine, "one@example.org")
        second = _queue(engine, "two@example.org")
        sent = 0
        while batch := outbox.run_once(engine, configured):  # others' rows may be due too
            sent += batch
        assert sent >= 2
        assert outbox.run_once(engine, configured) == 0  # nothing is sent twice
        delivered = [m for m in inbox.messages if m.rcpt_tos[0].endswith("@example.org")]
        assert {"one@example.org", "two@example.org"} <= {m.rcpt_tos[0] for m in delivered}
        assert b"Subject: Your report" in delivered[0].content
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sent_at, attempts FROM app.email_outbox WHERE id IN (:a, :b)"),
                {"a": first, "b": second},
            ).all()
        assert all(r.sent_at is not None and r.attempts == 1 for r in rows)
    finally:
        smtp.stop()


def test_unreachable_server_keeps_the_email_for_later(engine, settings):
    email = _queue(engine, "later@example.org")
    nobody = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_starttls": False}
    )
    assert outbox.run_once(engine, nobody) == 0
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT sent_at, attempts, last_error, next_attempt_at > now() AS later"
                " FROM app.email_outbox WHERE id = :id"
            ),
            {"id": email},
        ).one()
    assert row.sent_at is None and row.attempts == 1 and row.later
    assert "connect" in row.last_error


def test_without_smtp_nothing_is_sent(engine, settings):
    _queue(engine, "queued@example.org")
    assert outbox.run_once(engine, settings.model_copy(update={"smtp_host": None})) == 0
    assert outbox.pending(engine) >= 1
