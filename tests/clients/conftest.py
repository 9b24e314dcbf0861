"""Fixtures shared by the tests that drive real OGC API clients against the live server."""

import pytest

from mapserver.access import create_key


@pytest.fixture(scope="session")
def ogc_url(base_url: str) -> str:
    """The OGC API landing page, as a client is given it."""
    return f"{base_url}/ogc"


@pytest.fixture(scope="session")
def catalogue(runtime):
    return runtime.catalogue


@pytest.fixture(scope="session")
def api_keys(engine) -> dict[str, str]:
    """One API key per role, made for the clients' tests."""
    return {
        role: create_key(engine, f"clients test {role}", role)[1] for role in ("emergency", "staff")
    }
