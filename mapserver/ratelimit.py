"""Per-key and per-IP request limits: a fixed one-minute window each, answered with 429
and ``Retry-After`` when spent. Static files and map tiles are not counted.

The counters are shared by every app process: in PostgreSQL (an unlogged table on the
primary) or in Redis when ``redis_url`` is set. A process does not write every request
to the store: it counts a caller's requests itself and adds them to the store on the
caller's first request of a window, then at most every ``SYNC_S``, and at every request
once the caller has spent half its limit, so that the limit itself is enforced across
processes as if every request were written (well under it, another process's hits reach
the store up to ``SYNC_S`` late, which only matters past half the limit, where counting
is exact again). A caller whose own count already exceeds the limit is refused without
asking the store: counts only grow within a window. If the store does not answer,
requests are let through and a warning logged: a limit must not turn a store outage into
a service outage.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from mapserver.access import principal, send_json
from mapserver.database import autocommit
from mapserver.settings import Settings

log = logging.getLogger("mapserver.ratelimit")

WINDOW_S = 60
SYNC_S = 1.0
UNCOUNTED = ("/static/", "/vendor/", "/assets/", "/healthz")
HIT = text(  # parsed once
    "INSERT INTO app.rate_counters (who, window_start, hits) VALUES (:who, :window, :n)"
    " ON CONFLICT (who, window_start) DO UPDATE SET hits = rate_counters.hits + EXCLUDED.hits"
    " RETURNING hits"
)
COUNTING_CONNECTIONS = 2  # per process
SLOT_WAIT_S = 5.0  # as long as connecting may take (mapserver.database: connect_timeout)
FORGET = "DELETE FROM app.rate_counters WHERE window_start < :window"


class CounterStore(Protocol):
    errors: tuple[type[Exception], ...]  # what the store raises when it does not answer

    def hit(self, who: str, window: int, n: int = 1) -> int:
        """Count ``n`` requests of ``who`` in ``window``; the count so far, these included."""
        ...


class Busy(Exception):
    """No counting connection came free in time: the store does not answer."""


class PostgresCounters:
    errors = (DBAPIError, Busy)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Counts reach the store from worker threads (every request, past half a limit;
        # each new caller's first): a few connections at a time, rather than one per
        # thread beyond the pool (opened and closed per use, each new one an
        # authentication and a backend). A wait as long as a connection's timeout means
        # the database does not answer.
        self.slots = threading.BoundedSemaphore(COUNTING_CONNECTIONS)

    def hit(self, who: str, window: int, n: int = 1) -> int:
        if not self.slots.acquire(timeout=SLOT_WAIT_S):
            raise Busy(f"no counting connection free within {SLOT_WAIT_S} s")
        try:
            # One statement, its own transaction: the counter row (one per address, and a
            # flood comes through few) is locked only while PostgreSQL runs the upsert,
            # not across the round trips of a BEGIN ... COMMIT.
            with autocommit(self.engine) as conn:
                params = {"who": who, "window": window, "n": n}
                return conn.execute(HIT, params).scalar_one()
        finally:
            self.slots.release()


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis  # only when configured

        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.errors = (redis.RedisError,)

    def hit(self, who: str, window: int, n: int = 1) -> int:
        key = f"mapserver:rate:{who}:{window}"
        hits, _ = self.client.pipeline().incr(key, n).expire(key, 2 * WINDOW_S).execute()
        return hits


def counter_store(engine: Engine, settings: Settings) -> CounterStore:
    return RedisCounters(settings.redis_url) if settings.redis_url else PostgresCounters(engine)


def run_once(engine: Engine, settings: Settings) -> int:
    """Worker task: forget PostgreSQL counters of past windows (Redis keys expire)."""
    current = int(time.time()) // WINDOW_S * WINDOW_S
    with engine.begin() as conn:
        return conn.execute(text(FORGET), {"window": current}).rowcount


@dataclass
class Tally:
    """One caller's requests in the current window, as this process knows them."""

    shared: int = 0  # the store's count at the last sync
    pending: int = 0  # requests since then, not yet in the store
    synced_at: float | None = None  # monotonic
    syncing: bool = False


class RateLimit:
    def __init__(self, app: ASGIApp, store: CounterStore, per_ip: int, per_key: int) -> None:
        self.app = app
        self.store = store
        self.limits = {"ip": per_ip, "key": per_key}
        self.window = 0
        self.tallies: dict[str, Tally] = {}

    def _tally(self, who: str, window: int) -> Tally:
        if window != self.window:
            self.window, self.tallies = window, {}
        return self.tallies.setdefault(who, Tally())

    async def _spend(self, who: str, limit: int) -> float | None:
        """None when allowed, else the seconds until the window resets."""
        now = time.time()
        window = int(now) // WINDOW_S * WINDOW_S
        tally = self._tally(who, window)
        tally.pending += 1
        known = tally.shared + tally.pending  # at least what the store would say
        due = (
            tally.synced_at is None
            or time.monotonic() - tally.synced_at >= SYNC_S
            or 2 * known > limit
        )
        if known <= limit and due and not tally.syncing:
            tally.syncing, sent, tally.pending = True, tally.pending, 0
            try:
                tally.shared = await run_in_threadpool(self.store.hit, who, window, sent)
                tally.synced_at = time.monotonic()
            except self.store.errors as exc:
                log.warning("rate-limit store unavailable, request allowed: %s", exc)
                return None
            finally:
                tally.syncing = False
            known = tally.shared + tally.pending
        return window + WINDOW_S - now if known > limit else None

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
        wait = await self._spend(who, limit)
        if wait is None:
            await self.app(scope, receive, send)
            return
        body = (
            b'{"code": "TooManyRequests", "description": "Too many requests; slow down and'
            b' retry after the time in Retry-After."}'
        )
        await send_json(send, 429, body, [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
