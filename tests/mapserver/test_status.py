"""The staff service status page, and the freshness and failed-load records behind it."""

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from mapserver.access import create_key
from mapserver.freshness import layer_freshness, problem_loads
from mapserver.sessions import create_user
from tests.browser import axe_violations, sign_in

PASSWORD = "correct horse battery staple"
LAYER = "watercourses"  # no test loads it again, so its versions stay put
ADD_VERSION = """
INSERT INTO app.layer_versions (layer, version, status, source_uri, run_by, message, started_at)
VALUES (:layer, :version, :status, 'test://source', 'status test', :message, now())
"""
LOCK = "SELECT pg_advisory_xact_lock(hashtext('mapserver.load.' || :layer))"


@pytest.fixture
def problem_versions(engine):
    with engine.begin() as conn:
        conn.execute(text(ADD_VERSION), {"layer": LAYER, "version": 901, "status": "failed",
                                         "message": "source has no geometry column"})  # fmt: skip
        conn.execute(text(ADD_VERSION), {"layer": LAYER, "version": 902, "status": "loading",
                                         "message": None})  # fmt: skip
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM app.layer_versions WHERE run_by = 'status test'"))


def test_freshness_against_the_schedule(runtime, engine):
    daily = runtime.catalogue.layers["libraries"].model_copy(update={"refresh": "daily"})
    catalogue = dataclasses.replace(
        runtime.catalogue, layers={**runtime.catalogue.layers, "libraries": daily}
    )
    now = datetime.now(UTC)
    with engine.connect() as conn:
        today = {f.layer: f for f in layer_freshness(conn, catalogue, now)}
        later = {f.layer: f for f in layer_freshness(conn, catalogue, now + timedelta(days=2))}
    assert today["libraries"].state == "on time" and later["libraries"].state == "overdue"
    assert today["pharmacies"].state == "no schedule"
    assert today["libraries"].age_seconds(now) >= 0


def test_failed_interrupted_and_running_loads(engine, problem_versions):
    with engine.connect() as conn:
        states = {p.version: p.state for p in problem_loads(conn) if p.layer == LAYER}
    assert states == {901: "failed", 902: "interrupted"}  # nobody holds the layer's lock
    with engine.begin() as loader:  # a load in progress holds it
        loader.execute(text(LOCK), {"layer": LAYER})
        with engine.connect() as conn:
            running = {p.version: p.state for p in problem_loads(conn) if p.layer == LAYER}
    assert running[902] == "in progress"


def test_status_page_for_staff_only(base_url, engine, problem_versions):
    with httpx.Client(base_url=base_url) as http:
        anonymous = http.get("/status")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/status"
        emergency = create_key(engine, "status emergency", "emergency")[1]
        assert http.get("/status", headers={"X-API-Key": emergency}).status_code == 404
        staff = create_key(engine, "status staff", "staff")[1]
        page = http.get("/status", headers={"X-API-Key": staff})
    assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
    assert 'data-layer="libraries" data-state="no schedule"' in page.text
    assert re.search(rf'data-layer="{LAYER}" data-state="failed"', page.text)
    assert "source has no geometry column" in page.text
    assert re.search(rf'data-layer="{LAYER}" data-state="interrupted"', page.text)
    assert "None configured" in page.text  # replicas


@pytest.mark.browser
def test_status_page_is_accessible(page, engine, artifacts, problem_versions):
    create_user(engine, "status.planner@example.gov.uk", "Status Planner", "staff", PASSWORD)
    page.goto("/status")  # asks to sign in, then comes back
    sign_in(page, "status.planner@example.gov.uk", PASSWORD)
    page.wait_for_selector("h1:text('Service status')")
    assert page.get_by_role("link", name="Service status").is_visible()
    page.screenshot(path=str(artifacts / "status.png"), full_page=True)
    assert axe_violations(page, artifacts / "axe-status.json") == []
