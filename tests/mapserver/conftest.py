"""A second server on the same database with other settings: metrics limited to a network
the tests are not on, and an https public URL (as behind a TLS proxy)."""

import dataclasses
from ipaddress import ip_network

import pytest

from ..conftest import free_port, serve


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
    with serve(dataclasses.replace(runtime, settings=settings, started_cluster=None)):
        yield f"http://127.0.0.1:{port}", runtime.engine
