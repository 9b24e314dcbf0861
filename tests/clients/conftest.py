"""Fixtures shared by the tests that drive real OGC API clients against the live server."""

import httpx
import pytest

from mapserver.access import create_key


@pytest.fixture(scope="session")
def a_fault_report(base_url: str) -> str:
    """One resident's report, so that the reports collection has a feature to read like
    every other (clients such as ogctests expect one in each)."""
    answer = httpx.post(
        f"{base_url}/api/reports",
        data={"category": "pothole", "title": "Pothole", "lon": -2.158, "lat": 53.4085},
        headers={"Idempotency-Key": "clients-test-fault-report"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["reference"]


@pytest.fixture(scope="session")
def ogc_url(base_url: str, a_fault_report: str) -> str:
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
