"""Replica selection without a replica: a server that is not in recovery, or that does not
answer, is never read from. (The cluster test runs a real streaming replica.)"""

from sqlalchemy.engine import make_url

from mapserver.replicas import connect_replicas, written_lsn

from ..conftest import free_port


def test_a_server_not_in_recovery_or_not_answering_is_skipped(engine, settings):
    primary_url = make_url(settings.database_url).render_as_string(hide_password=False)
    gone = make_url(primary_url).set(port=free_port()).render_as_string(hide_password=False)
    databases = connect_replicas(
        engine, settings.model_copy(update={"database_replica_urls": [primary_url, gone]})
    )
    try:
        databases.check()
        promoted, down = databases.replicas
        assert not promoted.usable and "not in recovery" in promoted.problem
        assert not down.usable and "does not answer" in down.problem
        assert databases.reader() == (engine, "primary")
        assert databases.reader(written_lsn=10**9) == (engine, "primary")
        assert databases.primary_lsn() > 0
        password = make_url(gone).password
        assert not password or password not in down.name
    finally:
        databases.close()


def test_without_replicas_every_read_is_the_primary(engine, settings):
    databases = connect_replicas(engine, settings)
    assert databases.replicas == []
    assert databases.reader(written_lsn=5) == (engine, "primary")


def test_the_written_position_cookie_is_read_strictly():
    class Cookies:
        def __init__(self, value):
            self.cookies = {"mswal": value}

    assert written_lsn(Cookies("123456")) == 123456
    assert written_lsn(Cookies("12x")) is None
    assert written_lsn(Cookies("9" * 40)) is None
    assert written_lsn(Cookies("")) is None
