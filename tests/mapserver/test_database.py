"""The connection pool across a database restart, on a PostgreSQL server of its own: a
connection that sat idle is checked before use and replaced, one in steady use fails its
statement once and the pool renews itself."""

import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mapserver import database
from mapserver.settings import Settings
from tests.cluster.harness import PgServer, free_port, server_folder

BACKEND = text("SELECT pg_backend_pid()")


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    folder = server_folder()
    pg = PgServer(folder, "db", free_port(), "a password for the pool test")
    pg.initdb()
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(folder, ignore_errors=True)


def restart(pg: PgServer) -> None:
    pg.stop()  # immediate: every connection dies at once
    pg.start()


def test_an_idle_connection_is_checked_and_replaced(server, monkeypatch):
    monkeypatch.setattr(database, "PING_IDLE_S", 0.0)  # every pooled connection is "idle"
    engine = database.make_engine(server.url("postgres"), Settings(database_url=None))
    with engine.connect() as conn:
        before = conn.execute(BACKEND).scalar()
    restart(server)
    with engine.connect() as conn:  # no error: the check found the dead connection
        assert conn.execute(BACKEND).scalar() != before
    with database.autocommit(engine) as conn:  # the check leaves no transaction open
        assert conn.execute(BACKEND).scalar()
    engine.dispose()


def test_a_connection_in_steady_use_fails_once_then_the_pool_renews(server):
    engine = database.make_engine(server.url("postgres"), Settings(database_url=None))
    with engine.connect() as a, engine.connect() as b:  # two pooled connections
        a.execute(BACKEND), b.execute(BACKEND)
    restart(server)
    with pytest.raises(DBAPIError), engine.connect() as conn:
        conn.execute(BACKEND)
    for _ in range(3):  # the other pooled connection was renewed too
        with engine.connect() as conn:
            assert conn.execute(BACKEND).scalar()
    engine.dispose()
