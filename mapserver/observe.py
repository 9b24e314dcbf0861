"""The outermost middleware: gives each request its id, then writes one log line and
the Prometheus observations when the answer is sent.

Routes are named by their template (``/ogc/collections/{collection_id}/items``), never
the raw path, so the metrics stay a bounded set whatever the callers send.
"""

import json
import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mapserver import request_id
from mapserver.access import ANONYMOUS, send_json
from mapserver.metrics import observe_request

log = logging.getLogger("mapserver.requests")
UNMATCHED = "unmatched"
INTERNAL_ERROR = "Something went wrong on our side. Quote the request id if you report it."
BARE_HEADERS = [  # the error answer bypasses SecurityHeaders, which sits inside
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def route_template(scope: Scope) -> str:
    """The template of the route that answered, with the mount it sits under."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    path = getattr(route, "path_format", None) or getattr(route, "path", "")
    if isinstance(route, Mount):  # static files, or nothing matched inside a mount
        return f"{path}/{{path}}"
    return scope.get("root_path", "") + path


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = request_id.accept_or_new(incoming)
        token = request_id.current.set(rid)
        status, started_response = 500, False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                MutableHeaders(scope=message)[request_id.HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            if started_response:
                raise
            # The caller gets the id to quote; the traceback stays in the log.
            body = json.dumps(
                {"code": "InternalError", "description": INTERNAL_ERROR, "request_id": rid}
            ).encode()
            await send_json(send, 500, body, [(b"x-request-id", rid.encode()), *BARE_HEADERS])
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            role = scope.get("principal", ANONYMOUS).role or "anonymous"
            observe_request(scope["method"], route, status, seconds)
            log.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "role": role,
                    "request_id": rid,
                },
            )
            request_id.current.reset(token)
