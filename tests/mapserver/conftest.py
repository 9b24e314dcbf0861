"""A second server on the same database with other settings: metrics limited to a network
the tests are not on, and an https public URL (as behind a TLS proxy)."""

import dataclasses
import threading
import time
from ipaddress import ip_network

import pytest
import uvicorn

from mapserver.app import create_app

from ..conftest import free_port


@pytest.fixture(scope="session")
def outsider(runtime):
    port = free_port()
    settings = runtime.settings.model_copy(
        update={
            "port": port,
            "metrics_networks": [ip_network("10.0.0.0/8")],
            "public_url": "https://maps.example.gov.uk",
        }
    )
    app = create_app(dataclasses.replace(runtime, settings=settings, started_cluster=None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the second test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", runtime.engine
    server.should_exit = True
    thread.join(timeout=10)
