"""CSRF protection for every write made with a staff session, whatever the route.

A request authenticated by the session cookie (never one with an API key, which a
browser does not add by itself) with an unsafe method must
- not come from another site (``Sec-Fetch-Site: cross-site``, or an ``Origin`` that is
  neither this host nor the public URL), and
- carry the session's CSRF token: the ``X-CSRF-Token`` header (scripts read it from the
  page's ``<meta name="csrf-token">``) or a ``csrf_token`` form field (every form).

Routes may check the token themselves too (login.py does); this is the backstop that an
endpoint added later cannot forget. Login itself has no session yet: its form carries a
double-submit token (see login.py).
"""

import hmac
import json
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mapserver.access import send_json
from mapserver.logs import event
from mapserver.settings import Settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
FIELD = "csrf_token"
REFUSED = (
    "This request did not come from a page of this site, or its form expired (CSRF check)."
    " Reload the page and try again."
)


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.lower()


class CsrfGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.public = _netloc(settings.base_url)

    def _same_site(self, headers: dict[bytes, bytes]) -> bool:
        if headers.get(b"sec-fetch-site", b"").lower() == b"cross-site":
            return False
        origin = headers.get(b"origin", b"").decode("latin-1")
        # Browsers send Origin on cross-site POSTs; its absence is same-site. A page sent
        # with Referrer-Policy: no-referrer (a reporter's secret link) posts "Origin: null":
        # Sec-Fetch-Site above and the token decide then.
        if not origin or origin == "null":
            return True
        host = headers.get(b"host", b"").decode("latin-1").lower()
        return _netloc(origin) in {host, self.public}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = scope.get("csrf_token")  # set only for a session (access.Authentication)
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not expected:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        messages: list[Message] = []
        more = True
        while more:  # the body is read here, then replayed to the app
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False) and message["type"] == "http.request"

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        if not self._same_site(headers) or not await self._token_ok(scope, headers, messages):
            event("csrf refused", path=scope["path"], method=scope["method"])
            if scope["path"].startswith(("/ogc", "/api")):  # machines read the OGC shape
                body = json.dumps({"code": "Forbidden", "description": REFUSED}).encode()
                await send_json(send, 403, body)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": REFUSED.encode()})
            return
        await self.app(scope, replay, send)

    async def _token_ok(
        self, scope: Scope, headers: dict[bytes, bytes], messages: list[Message]
    ) -> bool:
        expected = scope["csrf_token"]
        sent = headers.get(b"x-csrf-token", b"").decode("latin-1")
        if sent:
            return hmac.compare_digest(sent, expected)
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if not content_type.startswith(FORMS):
            return False
        copies = list(messages)

        async def read() -> Message:
            return copies.pop(0) if copies else {"type": "http.request", "body": b""}

        async with Request(scope, read).form() as form:
            return hmac.compare_digest(str(form.get(FIELD, "")), expected)
