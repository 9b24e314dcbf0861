"""Reads from PostgreSQL streaming replicas, writes to the primary.

Code picks its database with one of two FastAPI dependencies (or the same functions
called with the request):

- ``write_engine``: the primary. Everything that changes data, and reads that decide a
  change (a check before an update, a lock).
- ``read_engine``: a replica when one is fresh enough for this client, else the primary.
  OGC API items, tiles, search and exports read here. Code without a request (the
  read-only analyses, as pygeoapi processes) calls ``Databases.reader()`` (no
  read-your-writes).

Freshness. A background thread asks each replica, every ``replica_check_s``, how far it
has replayed (``pg_last_wal_replay_lsn()``) and the primary how far it has written
(``pg_current_wal_lsn()``). A replica that has not yet replayed what the primary had
written ``replica_max_lag_s`` ago, or that does not answer, or that is no longer in
recovery (promoted), is skipped until a later check finds it well again. A connection
error on a replica also takes it out at once.

Read-your-writes. After a successful unsafe request (POST, PUT, PATCH, DELETE) the
:class:`ReadYourWrites` middleware sets a cookie with the primary's WAL position. Reads
carrying it go to a replica only once that replica has replayed past it, else to the
primary. The cookie outlives the time a lagging replica can still be in use after the
write: ``replica_max_lag_s`` plus two checks (the first check after the write records
it; the one after the lag limit takes the replica out), plus ``COOKIE_MARGIN_S`` for
checks that run late on a busy machine. Keeping it longer costs nothing: a replica that
has replayed the write still serves the writer. Clients that keep no cookies (scripts) read the
primary's data only once the replica caught up, usually within milliseconds.

Without replicas all of this is inert: both dependencies give the primary.
"""

import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mapserver.settings import Settings

log = logging.getLogger("mapserver.replicas")

WRITTEN_COOKIE = "mswal"
# A cookie that lasted exactly the lag limit and one check expired while a process whose
# check ran late still used the lagging replica (a writer then read around its write).
COOKIE_MARGIN_S = 5.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLICA_STATE = (
    "SELECT pg_is_in_recovery(),"
    " coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), -1)::bigint"
)


@dataclass
class Replica:
    name: str  # the URL without its password: for logs and /readyz
    engine: Engine  # for requests
    checker: Engine  # one connection of its own for the checks
    replay_lsn: int = -1
    usable: bool = False
    lag_s: float | None = None  # None: unknown (down)
    problem: str = "not checked yet"


@dataclass
class Databases:
    """The primary and its replicas, with each replica's latest known state."""

    primary: Engine
    replicas: list[Replica] = field(default_factory=list)
    max_lag_s: float = 5.0
    check_s: float = 1.0
    # (monotonic time, primary WAL position) of recent checks, oldest first.
    _history: deque[tuple[float, int]] = field(default_factory=deque)
    _turn: itertools.count = field(default_factory=itertools.count)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def reader(self, written_lsn: int | None = None) -> tuple[Engine, str]:
        """An engine to read from, and its name ("primary" or "replica<N>"): a usable
        replica (in turn) that has replayed past ``written_lsn``, else the primary."""
        fresh = [
            (i, r)
            for i, r in enumerate(self.replicas)
            if r.usable and (written_lsn is None or r.replay_lsn >= written_lsn)
        ]
        if not fresh:
            return self.primary, "primary"
        index, replica = fresh[next(self._turn) % len(fresh)]
        return replica.engine, f"replica{index + 1}"

    def primary_lsn(self) -> int:
        with self.primary.connect() as conn:
            return conn.execute(text(PRIMARY_LSN)).scalar_one()

    def check(self) -> None:
        """One round of checks: the primary's position, then each replica's."""
        now = time.monotonic()
        try:
            self._history.append((now, self.primary_lsn()))
        except DBAPIError as exc:
            log.warning("replica check: the primary does not answer: %s", _reason(exc))
            return
        while len(self._history) > 1 and now - self._history[1][0] >= self.max_lag_s:
            self._history.popleft()  # keep one entry at least max_lag_s old
        # What the primary had written max_lag_s ago (just after start: at the first check).
        required = self._history[0][1]
        for replica in self.replicas:
            self._check_replica(replica, required, now)

    def _check_replica(self, replica: Replica, required: int, now: float) -> None:
        try:
            with replica.checker.connect() as conn:
                in_recovery, replayed = conn.execute(text(REPLICA_STATE)).one()
        except DBAPIError as exc:
            self._set(replica, False, f"does not answer: {_reason(exc)}")
            replica.lag_s = None
            return
        if not in_recovery:
            self._set(replica, False, "is not in recovery (promoted?): not used for reads")
            return
        replica.replay_lsn = replayed
        behind = [t for t, lsn in self._history if lsn > replayed]
        replica.lag_s = now - behind[0] if behind else 0.0
        if replayed < required:
            self._set(replica, False, f"lags more than {self.max_lag_s:g} s behind the primary")
        else:
            self._set(replica, True, "")

    @staticmethod
    def _set(replica: Replica, usable: bool, problem: str) -> None:
        if usable != replica.usable or problem != replica.problem:
            level = logging.INFO if usable else logging.WARNING
            log.log(level, "replica %s %s", replica.name, problem or "is serving reads")
        replica.usable, replica.problem = usable, problem

    def start(self) -> None:
        """Check every replica now, then keep checking in a background thread."""
        if not self.replicas or self._thread is not None:
            return
        self.check()
        self._thread = threading.Thread(target=self._run, name="replica-checks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.check_s):
            try:
                self.check()
            except Exception:  # a check must never end the thread
                log.exception("replica check failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for replica in self.replicas:
            replica.engine.dispose()
            replica.checker.dispose()

    @property
    def cookie_max_age(self) -> int:
        return math.ceil(self.max_lag_s + 2 * self.check_s + COOKIE_MARGIN_S)


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


def connect_replicas(primary: Engine, settings: Settings) -> Databases:
    from mapserver.database import make_engine

    replicas = []
    one = settings.model_copy(update={"pool_size": 1, "max_overflow": 0})
    for url in settings.database_replica_urls:
        engine = make_engine(url, settings)
        name = make_url(url).render_as_string(hide_password=True)
        replica = Replica(name, engine, make_engine(url, one))
        event.listen(engine, "handle_error", _taken_out(replica))
        replicas.append(replica)
    return Databases(
        primary, replicas, max_lag_s=settings.replica_max_lag_s, check_s=settings.replica_check_s
    )


def _taken_out(replica: Replica):  # noqa: ANN202 (an SQLAlchemy event handler)
    def on_error(context) -> None:  # noqa: ANN001
        if context.is_disconnect:
            Databases._set(replica, False, "lost its connection")

    return on_error


# --- what request handlers use ---------------------------------------------------------


def _databases(connection: HTTPConnection) -> Databases | None:
    return getattr(connection.app.state, "databases", None)


def written_lsn(connection: HTTPConnection) -> int | None:
    value = connection.cookies.get(WRITTEN_COOKIE, "")
    return int(value) if value.isdigit() and len(value) < 20 else None


def read_engine(request: Request) -> Engine:
    """FastAPI dependency: the engine this request reads from (see the module doc)."""
    databases = _databases(request)
    if databases is None:
        return request.app.state.engine
    engine, name = databases.reader(written_lsn(request))
    request.scope["database"] = name
    return engine


def write_engine(request: Request) -> Engine:
    """FastAPI dependency: the primary."""
    request.scope["database"] = "primary"
    return request.app.state.engine


class ReadYourWrites:
    """After a successful write, a cookie with the primary's WAL position (see the module
    doc); on every answer that read a database, ``Server-Timing: db;desc=<which>``."""

    def __init__(self, app: ASGIApp, databases: Databases, secure: bool) -> None:
        self.app = app
        self.databases = databases
        self.cookie = f"; Max-Age={databases.cookie_max_age}; Path=/; HttpOnly; SameSite=Lax"
        if secure:
            self.cookie += "; Secure"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.databases.replicas:
            await self.app(scope, receive, send)
            return
        writes = scope["method"] in UNSAFE_METHODS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if writes and message["status"] < 400:
                    lsn = await run_in_threadpool(self.databases.primary_lsn)
                    cookie = f"{WRITTEN_COOKIE}={lsn}{self.cookie}"
                    headers.append((b"set-cookie", cookie.encode()))
                if which := scope.get("database"):
                    headers.append((b"server-timing", f'db;desc="{which}"'.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
