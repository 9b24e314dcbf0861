"""Rate limits answer 429 with Retry-After, per address and per API key."""

import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mapserver.access import Authentication, KeyStore, create_key
from mapserver.ratelimit import RateLimit

from ..conftest import free_port


@pytest.fixture(scope="module")
def limited(engine):
    """A tiny app behind the real authentication and rate-limit middleware, over HTTP."""
    app = Starlette(routes=[Route("/ping", lambda request: PlainTextResponse("pong"))])
    app.add_middleware(RateLimit, per_ip=3, per_key=5)
    app.add_middleware(Authentication, keys=KeyStore(engine))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def test_per_address_and_per_key_limits(limited, engine):
    with httpx.Client(base_url=limited) as client:
        statuses = [client.get("/ping").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/ping")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["code"] == "TooManyRequests"
        key = create_key(engine, "rate test", "emergency")[1]
        with_key = [client.get("/ping", headers={"X-API-Key": key}).status_code for _ in range(6)]
        assert with_key == [200] * 5 + [429]
