"""The production shape on this machine: a PostgreSQL primary and a streaming replica
(pg_basebackup), two app processes behind Debian's nginx with the repository's config.

Checks that reads (analyses too) are answered by the replica, that a lagging replica is
skipped and a client that just wrote reads the primary until the replica has replayed its
write, and that killing one app process with SIGKILL loses no request nginx can retry.
Run with ``make test-cluster`` (about a minute)."""

import re
import secrets
import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine

from mapserver.sessions import create_user

from .harness import Service, wait_for

pytestmark = pytest.mark.cluster
MAX_LAG_S = 4
ITEMS = "/ogc/collections/libraries/items?limit=2"


@pytest.fixture(scope="module")
def service():
    env = {"MAPSERVER_REPLICA_CHECK_S": "0.2", "MAPSERVER_REPLICA_MAX_LAG_S": str(MAX_LAG_S)}
    running = Service(workers=2, replica=True, extra_env=env, log_all=True)
    yield running
    running.close()


def served_by(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    found = re.search(r'db;desc="([^"]+)"', response.headers.get("server-timing", ""))
    assert found, response.headers
    return found.group(1)


def test_reads_are_answered_by_the_replica(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        marker = f"probe-{secrets.token_hex(6)}"
        response = http.get("/ogc/collections/libraries/items", params={"name": marker})
        assert served_by(response) == "replica1"
        # The servers' own logs (log_statement=all) say who ran the query.
        assert service.replica.logged(marker) and not service.primary.logged(marker)
        assert service.replica.query("SELECT pg_is_in_recovery()") == [(True,)]
        assert served_by(http.get("/api/search", params={"q": "library"})) == "replica1"
        tile = http.get("/ogc/collections/streetlights/tiles/WebMercatorQuad/13/4047/2642")
        assert tile.status_code in (200, 204)
        assert 'db;desc="replica1"' in tile.headers["server-timing"]


def test_analyses_read_from_the_replica(service):
    # A distinctive coordinate marks the analysis's query in the servers' logs.
    lon = -2.15 - (1 + secrets.randbelow(10**6)) * 1e-9
    marker = repr(lon)  # as json.dumps writes it into the query
    point = {"type": "Point", "coordinates": [lon, 53.41]}
    body = {"inputs": {"layers": ["libraries"], "distance": 800, "geometry": point}}
    with httpx.Client(base_url=service.url, timeout=30) as http:
        # Both app processes (nginx takes turns) know the replica is fresh.
        in_use = lambda: all(served_by(http.get(ITEMS)) == "replica1" for _ in range(2))  # noqa: E731
        wait_for(in_use, 10, "replica in use by both processes")
        response = http.post("/ogc/processes/features-near-location/execution", json=body)
    assert response.status_code == 200, response.text
    assert service.replica.logged(marker) and not service.primary.logged(marker)


def test_lagging_replica_and_read_your_writes(service):
    engine = create_engine(service.primary.url().replace("postgresql:", "postgresql+psycopg2:"))
    email = f"planner-{secrets.token_hex(3)}@example.gov.uk"
    create_user(engine, email, "A Planner", "staff", "a long enough password 1")
    engine.dispose()
    anonymous = httpx.Client(base_url=service.url, timeout=30)
    writer = httpx.Client(base_url=service.url, timeout=30)
    wait_for(lambda: served_by(anonymous.get(ITEMS)) == "replica1", 10, "replica in use")
    service.replica.query("SELECT pg_wal_replay_pause()")
    try:
        # Logging in writes a session on the primary; the paused replica has not replayed it.
        paused_at = time.monotonic()
        form = writer.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        login = writer.post(
            "/login",
            data={"email": email, "password": "a long enough password 1", "csrf_token": token},
        )
        assert login.status_code == 303 and "mswal" in writer.cookies
        assert served_by(writer.get(ITEMS)) == "primary"  # its own write is not there yet
        if time.monotonic() - paused_at < MAX_LAG_S - 1:  # others still read the replica
            assert served_by(anonymous.get(ITEMS)) == "replica1"
        # Past the lag limit nobody reads the replica.
        wait_for(lambda: served_by(anonymous.get(ITEMS)) == "primary", 15, "replica skipped")
        assert served_by(writer.get(ITEMS)) == "primary"
    finally:
        service.replica.query("SELECT pg_wal_replay_resume()")
    wait_for(lambda: served_by(anonymous.get(ITEMS)) == "replica1", 15, "replica back")
    wait_for(lambda: served_by(writer.get(ITEMS)) == "replica1", 15, "writer back on replica")
    anonymous.close()
    writer.close()


def test_killing_a_worker_loses_no_retryable_request(service):
    paths = [ITEMS, "/healthz", "/api/search?q=library", "/ogc/collections/libraries"]
    statuses: list[int] = []
    errors: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            for i in range(60):  # bounded: 4 clients x 60 requests, loopback only
                try:
                    statuses.append(http.get(paths[(n + i) % len(paths)]).status_code)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    wait_for(lambda: len(statuses) >= 30, 60, "requests before the kill")
    victim = service.apps[1]
    victim.kill()
    for thread in clients:
        thread.join(timeout=120)
    assert victim.process.returncode == -9
    assert not errors
    assert len(statuses) > 100
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
