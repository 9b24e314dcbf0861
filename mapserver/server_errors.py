"""Any unhandled exception becomes a clean 500, logged with its traceback, and the
connection stays open for the client's next request.

Starlette's own error middleware answers a plain-text 500 and re-raises; uvicorn then
closes the connection, because an application that raised may have left it in any state,
so a keep-alive client finds its next request reset. Here the exception stops: a 500 not
yet sent (ours, or the plain one a mounted app's error middleware was sending, such as
pygeoapi's) is replaced by a JSON body (the OGC exception shape under ``/ogc``), and an
exception after a complete answer is only logged. Only an answer cut off half-way is left
to uvicorn to close, as it must be.

A database that cannot be reached (restarting, failing over) is a 503 with
``Retry-After``, not a 500: the request may simply be sent again.
"""

import json
import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mapserver.access import send_json

log = logging.getLogger(__name__)


UNAVAILABLE = "The database is not available just now; send the request again shortly."


def unavailable(exc: Exception) -> bool:
    """A lost or refused database connection (not a bad statement)."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def error_body(path: str, description: str | None = None) -> bytes:
    if description:
        return json.dumps({"code": "ServiceUnavailable", "description": description}).encode()
    if path == "/ogc" or path.startswith("/ogc/"):
        body = {
            "code": "InternalServerError",
            "description": "The server could not answer this request; the error is logged.",
        }
    else:
        body = {"detail": "Internal server error; the error is logged."}
    return json.dumps(body).encode()


class ServerErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False
        held: list[Message] = []  # a 500 is held back until we know the app did not raise

        async def guarded(message: Message) -> None:
            nonlocal started, complete
            if held or (message["type"] == "http.response.start" and message["status"] == 500):
                held.append(message)
                return
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body":
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, guarded)
        except Exception as exc:
            if started and not complete:
                log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
                raise  # half an answer: only closing the connection can end it
            if unavailable(exc):
                log.warning("database unavailable answering %s %s: %s",
                            scope["method"], scope["path"], exc)  # fmt: skip
                if not started:
                    body = error_body(scope["path"], UNAVAILABLE)
                    await send_json(send, 503, body, [(b"retry-after", b"2")])
                return
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if not started:
                await send_json(send, 500, error_body(scope["path"]))
            return
        for message in held:  # a 500 the app meant to send
            await send(message)
