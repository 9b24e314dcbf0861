"""Database handling: one long-lived pool per process, connection checks, migrations.

PostGIS pays 35-90 ms of PROJ set-up on the first transform in each new connection,
so connections are pooled and kept (recycled every ``pool_recycle`` seconds).

SQLAlchemy is imported only when an engine is made: the start-up checks and the loaders
talk through psycopg2 (:class:`Connects`), so `mapserver load` spares its tenth of a
second.
"""

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import psycopg2

from mapserver.cluster import PrivateCluster
from mapserver.errors import ServiceError
from mapserver.settings import Settings

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PGConnection
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

APP_SCHEMA = "app"
LAYER_SCHEMA = "layers"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
REVISION = re.compile(r"""^revision\s*=\s*["'](\w+)["']\s*$""", re.M)
DOWN_REVISION = re.compile(r"""^down_revision\s*=\s*(?:["'](\w+)["']|None)\s*$""", re.M)
PING_IDLE_S = 10.0
URL_FORM = "Use the form postgresql://user:password@host:5432/database"
CONNECT_ARGS = {"connect_timeout": 5, "application_name": "mapserver"}


class Connects(Protocol):
    """What hands out DB-API (psycopg2) connections, closed by the caller: an SQLAlchemy
    engine (from its pool), or a :class:`Direct`."""

    def raw_connection(self) -> Any: ...


class Direct:
    """psycopg2 connections to ``url``, each kept once given back for the next to ask: a
    small pool for a process that needs a few (the start-up, a load), where importing
    SQLAlchemy would cost more than they do."""

    def __init__(self, url: str) -> None:
        self.dsn = libpq_url(url)
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def raw_connection(self) -> "_Lent":
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        return _Lent(conn or psycopg2.connect(self.dsn, **CONNECT_ARGS), self)

    def give_back(self, conn: Any) -> None:
        try:
            conn.rollback()
        except psycopg2.Error:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Lent:
    """A connection of a :class:`Direct`: ``close()`` gives it back (as SQLAlchemy's pool
    does); everything else is the psycopg2 connection's."""

    def __init__(self, conn: Any, owner: Direct) -> None:
        self.driver_connection = conn
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver_connection, name)

    def close(self) -> None:
        if not self.driver_connection.closed:
            self._owner.give_back(self.driver_connection)


@contextmanager
def connected(db: Connects) -> "Iterator[PGConnection]":
    """A psycopg2 connection of ``db``, closed (or given back to its pool) after."""
    raw = db.raw_connection()
    try:
        yield getattr(raw, "driver_connection", raw)  # SQLAlchemy's pool and Direct wrap it
    finally:
        raw.close()


def libpq_url(url: str) -> str:
    """``url`` as libpq takes it (without SQLAlchemy's ``+driver``), or a clear error."""
    scheme = urlsplit(url).scheme
    if not scheme or "://" not in url:
        raise ServiceError(f"DATABASE_URL is not a database URL: {url!r}", hint=URL_FORM)
    backend = scheme.partition("+")[0]
    if backend not in ("postgresql", "postgres"):
        raise ServiceError(
            f"DATABASE_URL must point at PostgreSQL, not {backend!r}.", hint=URL_FORM
        )
    return "postgresql" + url[len(scheme) :]


def private_cluster(settings: Settings) -> PrivateCluster:
    return PrivateCluster(
        settings.state_dir, settings.pg_port, settings.pg_bin_dir, fast=settings.pg_fast
    )


def make_engine(url: str, settings: Settings) -> "Engine":
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(libpq_url(url))  # checked as a Direct's URL is
    except ArgumentError as exc:
        raise ServiceError(f"DATABASE_URL is not a database URL: {exc}", hint=URL_FORM) from None
    parsed = parsed.set(drivername="postgresql+psycopg2")
    engine = create_engine(
        parsed,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_recycle=settings.pool_recycle,
        connect_args=CONNECT_ARGS,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: "Engine") -> None:
    """Check a pooled connection before use only when it sat unused for PING_IDLE_S (what
    a restarted server or a firewall drops), not on every checkout as ``pool_pre_ping``
    does: that is one more round trip per request. A connection that dies while in
    steady use fails its statement, and SQLAlchemy then renews the whole pool."""
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection: object, record: "ConnectionPoolEntry") -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(
        dbapi_connection: object, record: "ConnectionPoolEntry", proxy: "PoolProxiedConnection"
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_S:
            return  # new, or in steady use
        try:
            with dbapi_connection.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute("SELECT 1")
            # Not left in the transaction psycopg2 began: a caller may set autocommit.
            dbapi_connection.rollback()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 (any failure: the pool connects anew)
            raise DisconnectionError(str(exc)) from exc


@contextmanager
def autocommit(engine: "Engine") -> "Iterator[Connection]":
    """A pooled connection on which each statement commits by itself: no BEGIN, COMMIT or
    ROLLBACK round trips, for reads that need no snapshot and writes of one statement.
    Set on psycopg2's connection, which sends nothing for it (SQLAlchemy's isolation_level
    option sends a SET when a connection is taken and another when it is given back)."""
    with engine.connect() as conn:
        driver = conn.connection.dbapi_connection
        assert driver is not None
        driver.autocommit = True
        try:
            yield conn
        finally:
            if not driver.closed:  # not when a lost connection was thrown away meanwhile
                driver.autocommit = False


def check_connection(db: Direct) -> None:
    """Fail with one clear message when the database does not answer (the connection
    made is kept for what follows)."""
    try:
        db.raw_connection().close()
    except psycopg2.Error as exc:
        parts = urlsplit(db.dsn)
        target = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceError(
            f"Cannot connect to the database at {target}: {reason}",
            hint="Check that the server is running and DATABASE_URL is right, or unset "
            "DATABASE_URL to let the service run its own private PostgreSQL.",
        ) from None


def _heads() -> set[str] | None:
    """The newest revisions, read from the migration files (None when one is not in the
    plain form): a check at each start that costs no import of alembic and every migration."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = REVISION.search(source), DOWN_REVISION.search(source)
        if not revision or not down:
            return None
        revisions.add(revision.group(1))
        parents.add(down.group(1))
    return (revisions - parents) or None


def _at_head(db: Connects) -> bool:
    heads = _heads()
    if heads is None:
        return False
    with connected(db) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT to_regclass('{APP_SCHEMA}.alembic_version')")
        if cursor.fetchone()[0] is None:
            return False
        cursor.execute(f"SELECT version_num FROM {APP_SCHEMA}.alembic_version")
        return {version for (version,) in cursor.fetchall()} == heads


def migrate(db: Connects, engine: "Callable[[], Engine]") -> None:
    """Bring the app schema to the newest migration (extensions, schemas, app tables);
    an ``engine()`` is made only when there is something to do."""
    if _at_head(db):
        return
    from alembic import command  # a tenth of a second: only when migrating
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine().begin() as conn:
            # Several app processes or hosts may start at once: one migrates, the others wait.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("migrate")})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ServiceError(
            f"Could not prepare the database schema: {reason}",
            hint="The database needs the PostGIS and pgRouting extensions, and a user who "
            "may create schemas (CREATE EXTENSION postgis, pgrouting as a superuser).",
        ) from None


def lock_key(name: str) -> int:
    """A stable 64-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(f"mapserver:{name}".encode()).digest()[:8], signed=True)


@contextmanager
def try_lock(engine: "Engine", name: str) -> Iterator[bool]:
    """Hold the advisory lock ``name`` on the primary while the block runs, if no other
    session holds it (yields False then). A process that dies releases it with its
    connection."""
    from sqlalchemy import text

    with engine.connect() as conn:
        key = lock_key(name)
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def migration_heads() -> set[str]:
    """The newest revision(s) this code knows."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def schema_revisions(engine: "Engine") -> set[str]:
    """The revision(s) the database is at (empty before the first migration)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('app.alembic_version')")).scalar() is None:
            return set()
        return set(conn.execute(text("SELECT version_num FROM app.alembic_version")).scalars())


def server_versions(engine: "Engine") -> dict[str, str]:
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT current_setting('server_version'), postgis_full_version(),"
                " (SELECT extversion FROM pg_extension WHERE extname = 'pgrouting')"
            )
        ).one()
    postgis = row[1].split('"')[1] if '"' in row[1] else row[1]
    return {"postgresql": row[0], "postgis": postgis, "pgrouting": row[2] or "not installed"}
