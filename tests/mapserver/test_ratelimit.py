"""Rate limits answer 429 with Retry-After, per address and per API key, with counters
shared by every app process: in PostgreSQL, or in a real Redis server."""

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import cycle

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mapserver.access import Authentication, KeyStore, create_key
from mapserver.ratelimit import (
    SYNC_S,
    WINDOW_S,
    PostgresCounters,
    RateLimit,
    RedisCounters,
    run_once,
)

from ..conftest import free_port

# The rest of the suite counts requests from 127.0.0.1 in the same database: these tests
# are clients of their own, on another loopback address.
CLIENT_ADDRESSES = iter(f"127.0.0.{n}" for n in range(2, 250))


@contextmanager
def serve(app) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def limited_app(engine, store, per_ip=3):
    """A tiny app behind the real authentication and rate-limit middleware."""
    app = Starlette(routes=[Route("/ping", lambda request: PlainTextResponse("pong"))])
    app.add_middleware(RateLimit, store=store, per_ip=per_ip, per_key=5)
    app.add_middleware(Authentication, keys=KeyStore(engine))
    return app


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server of our own on a free port (no data kept)."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (scripts/bootstrap.sh system test)"
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            RedisCounters(url).client.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["postgresql", "redis"])
def store(request, engine):
    if request.param == "redis":
        return RedisCounters(request.getfixturevalue("redis_url"))
    return PostgresCounters(engine)


def client_from(address: str, base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address))


def test_per_address_and_per_key_limits(store, engine):
    with serve(limited_app(engine, store)) as url, client_from(next(CLIENT_ADDRESSES), url) as c:
        statuses = [c.get("/ping").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = c.get("/ping")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["code"] == "TooManyRequests"
        key = create_key(engine, "rate test", "emergency")[1]
        with_key = [c.get("/ping", headers={"X-API-Key": key}).status_code for _ in range(6)]
        assert with_key == [200] * 5 + [429]


def test_two_app_processes_share_one_limit(store, engine):
    """Two servers on one store: requests alternating between them meet one limit."""
    with serve(limited_app(engine, store)) as a, serve(limited_app(engine, store)) as b:
        address = next(CLIENT_ADDRESSES)
        with client_from(address, a) as to_a, client_from(address, b) as to_b:
            statuses = [c.get("/ping").status_code for c, _ in zip(cycle([to_a, to_b]), range(5))]
    assert statuses == [200, 200, 200, 429, 429]


def test_well_under_the_limit_requests_reach_the_store_in_batches(engine, scalar):
    if time.time() % WINDOW_S > WINDOW_S - 10:  # all in one window: its batches add up
        time.sleep(WINDOW_S - time.time() % WINDOW_S)
    address = next(CLIENT_ADDRESSES)
    stored = f"SELECT coalesce(sum(hits), 0) FROM app.rate_counters WHERE who = 'ip:{address}'"
    with (
        serve(limited_app(engine, PostgresCounters(engine), per_ip=1000)) as url,
        client_from(address, url) as c,
    ):
        assert all(c.get("/ping").status_code == 200 for _ in range(20))
        assert 1 <= scalar(stored) < 20  # the first request, then a batch a second at most
        time.sleep(SYNC_S)
        assert c.get("/ping").status_code == 200
        assert scalar(stored) == 21  # nothing lost: the rest came with this one


def test_a_store_that_does_not_answer_lets_requests_through(engine):
    gone = RedisCounters(f"redis://127.0.0.1:{free_port()}/0")
    with serve(limited_app(engine, gone)) as url, client_from(next(CLIENT_ADDRESSES), url) as c:
        assert [c.get("/ping").status_code for _ in range(5)] == [200] * 5


def test_old_windows_are_forgotten(engine, settings, scalar):
    PostgresCounters(engine).hit("ip:192.0.2.1", 0)  # a window in 1970
    assert run_once(engine, settings) >= 1
    assert scalar("SELECT count(*) FROM app.rate_counters WHERE window_start = 0") == 0
