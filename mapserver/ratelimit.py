"""Per-key and per-IP request limits: a fixed one-minute window each, answered with 429
and ``Retry-After`` when spent. Static files and map tiles are not counted.

Counters live in this process, so N workers allow up to N times the limit; a shared store
comes with scaling out.
"""

import math
import time
from collections import defaultdict

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from mapserver.access import principal, send_json

WINDOW_S = 60.0
UNCOUNTED = ("/static/", "/vendor/", "/assets/", "/healthz")


class RateLimit:
    def __init__(self, app: ASGIApp, per_ip: int, per_key: int) -> None:
        self.app = app
        self.limits = {"ip": per_ip, "key": per_key}
        self.window_start = time.monotonic()
        self.counts: dict[str, int] = defaultdict(int)

    def _spend(self, who: str, limit: int) -> float | None:
        """None when allowed, else the seconds until the window resets."""
        now = time.monotonic()
        if now - self.window_start >= WINDOW_S:
            self.window_start, self.counts = now, defaultdict(int)
        self.counts[who] += 1
        if self.counts[who] > limit:
            return WINDOW_S - (now - self.window_start)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Tiles are not counted: one view asks for a hundred, and they are cached by ETag.
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNCOUNTED) or "/tiles/" in path:
            await self.app(scope, receive, send)
            return
        caller = principal(HTTPConnection(scope))
        if caller.key_id is not None:
            who, limit = f"key:{caller.key_id}", self.limits["key"]
        elif caller.user_id is not None:
            who, limit = f"user:{caller.user_id}", self.limits["key"]
        else:
            client = scope.get("client") or ("unknown", 0)
            who, limit = f"ip:{client[0]}", self.limits["ip"]
        wait = self._spend(who, limit)
        if wait is None:
            await self.app(scope, receive, send)
            return
        body = (
            b'{"code": "TooManyRequests", "description": "Too many requests; slow down and'
            b' retry after the time in Retry-After."}'
        )
        await send_json(send, 429, body, [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
