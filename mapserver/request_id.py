"""The request id: taken from the caller's ``X-Request-ID`` when it is sane, else made
here; sent back in the response, written on every log line and prepended to every SQL
statement as a comment, so ``pg_stat_activity`` and the PostgreSQL log name the request.
"""

import re
import uuid
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

HEADER = "X-Request-ID"
# Letters, digits and . _ - only: nothing that could end a SQL comment (*/), carry a
# psycopg2 placeholder (%) or split a log line.
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept_or_new(incoming: str | None) -> str:
    """The caller's id when it is sane (a proxy's or a client's), else a new one."""
    if incoming and SANE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _comment(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    request_id = current.get()
    if request_id is None:
        return statement, parameters
    return f"/* request_id={request_id} */ {statement}", parameters


def comment_sql() -> None:
    """Prefix the SQL of every engine in this process (ours and pygeoapi's)."""
    if not event.contains(Engine, "before_cursor_execute", _comment):
        event.listen(Engine, "before_cursor_execute", _comment, retval=True)
