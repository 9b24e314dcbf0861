"""Analysis jobs: asynchronous runs with progress kept in PostgreSQL, owned by whoever
started them (staff see all; anyone else gets 404), their downloads, and the retention
clean-up."""

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from analysis.jobs import job_result, reporter, run_once, visible_job
from analysis.report import render_pdf
from mapserver.access import Principal, create_key
from mapserver.sessions import create_user
from tests.mapserver.test_cli import MAPSERVER, run
from tests.mapserver.test_login import sign_in

REACH = "/ogc/processes/incident-reach/execution"


def wait(client, job_url: str, headers: dict) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(job_url, params={"f": "json"}, headers=headers).json()
        if status["status"] in ("successful", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError("the job did not finish")


@pytest.fixture(scope="module")
def emergency_job(client, keys, town_centre) -> str:
    inputs = {"geometry": town_centre, "distance": 300, "layers": ["defibrillators", "lsoas"]}
    response = client.post(
        REACH, json={"inputs": inputs}, headers={**keys["emergency"], "Prefer": "respond-async"}
    )
    assert response.status_code == 201, response.text
    job_url = response.headers["Location"]
    assert wait(client, job_url, keys["emergency"])["status"] == "successful"
    return job_url.rstrip("/").rsplit("/", 1)[-1]


def test_jobs_are_for_their_owner_and_staff(client, engine, keys, emergency_job, scalar):
    url = f"/ogc/jobs/{emergency_job}"
    assert scalar("SELECT owner_role FROM app.jobs WHERE identifier = :j", j=emergency_job) == (
        "emergency"
    )
    other = {"X-API-Key": create_key(engine, "another agency", "emergency")[1]}
    page = f"/jobs/{emergency_job}"
    for path in (url, f"{url}/results", page, f"{page}/result.csv"):
        assert client.get(path, headers=keys["emergency"]).status_code == 200, path
        assert client.get(path, headers=keys["staff"]).status_code == 200, path
        assert client.get(path, headers=other).status_code == 404, path
        assert client.get(path).status_code == 404, path
    assert client.delete(url, headers=other).status_code == 404
    progress = scalar("SELECT progress FROM app.jobs WHERE identifier = :j", j=emergency_job)
    assert progress == 100


def test_downloads(client, keys, emergency_job, artifacts):
    geojson = client.get(f"/jobs/{emergency_job}/result.geojson", headers=keys["staff"]).json()
    layers = {f["properties"]["layer"] for f in geojson["features"]}
    assert {"site", "lsoas"} <= layers
    csv = client.get(f"/jobs/{emergency_job}/result.csv", headers=keys["staff"]).text
    assert csv.splitlines()[0].startswith("layer,id,distance_m")
    pdf = client.get(f"/jobs/{emergency_job}/report.pdf", headers=keys["staff"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    (artifacts / "reach-report.pdf").write_bytes(pdf.content)
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 10_000
    assert b"/Title (Stockport: Incident reach)" in pdf.content


def test_the_jobs_page_is_for_staff(client, keys, emergency_job):
    page = client.get("/jobs", headers=keys["staff"])
    assert page.status_code == 200 and emergency_job in page.text
    assert client.get("/jobs", headers=keys["emergency"]).status_code == 403
    anonymous = client.get("/jobs", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_old_jobs_are_deleted_with_their_results(runtime, client, keys, town_centre, scalar):
    inputs = {"geometry": town_centre, "distance": 100, "layers": ["defibrillators"]}
    response = client.post(REACH, json={"inputs": inputs}, headers=keys["emergency"])
    assert response.status_code == 200
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    location = scalar("SELECT location FROM app.jobs WHERE identifier = :j", j=job_id)
    run_once(runtime.engine, runtime.settings)
    assert scalar("SELECT count(*) FROM app.jobs WHERE identifier = :j", j=job_id) == 1
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE app.jobs SET created = created - interval '31 days' WHERE identifier = %s",
            (job_id,),
        )
    assert Path(location).exists()
    assert run_once(runtime.engine, runtime.settings) >= 1
    assert scalar("SELECT count(*) FROM app.jobs WHERE identifier = :j", j=job_id) == 0
    assert not Path(location).exists()


def test_clean_command(database_url, runtime, tmp_path):
    env = {"DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path),
           "MAPSERVER_JOBS_RETENTION_DAYS": "7"}  # fmt: skip
    result = run([*MAPSERVER, "jobs", "clean"], env)
    assert result.returncode == 0, result.stderr
    assert "older than 7 days deleted" in result.stderr


def test_the_pdf_takes_any_text(runtime, emergency_job):
    result = job_result(visible_job(runtime.engine, emergency_job, Principal("staff")))
    hostile = "$\\frac{ <script>alert(1)</script> =cmd|' /C calc'!A0"
    result["site"]["label"] = hostile
    for section in result["sections"]:
        for feature in section["features"]:
            feature["properties"].update({f["name"]: hostile for f in section["fields"]})
    pdf = render_pdf(result, runtime.catalogue, runtime.engine, None)
    assert pdf.startswith(b"%PDF")


def test_progress_is_written_where_clients_poll(runtime, scalar):
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO app.jobs (identifier, process_id, status, progress, created, started,"
            " updated) VALUES ('progress-test', 'incident-reach', 'accepted', 5, now(), now(),"
            " now())"
        )
    reporter(runtime.engine, "progress-test")(40, "Finding schools")
    row = "SELECT status || ' ' || progress || ' ' || message FROM app.jobs WHERE identifier = :j"
    assert scalar(row, j="progress-test") == "running 40 Finding schools"
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM app.jobs WHERE identifier = 'progress-test'")


def test_a_signed_in_session_needs_the_pages_csrf_token(base_url, engine, town_centre):
    create_user(engine, "reacher@example.gov.uk", "Reacher", "staff", "a long enough password")
    inputs = {"inputs": {"geometry": town_centre, "distance": 100, "layers": ["defibrillators"]}}
    with httpx.Client(base_url=base_url) as http:
        sign_in(http, "reacher@example.gov.uk", "a long enough password")
        refused = http.post(REACH, json=inputs)
        assert refused.status_code == 403 and "CSRF" in refused.json()["description"]
        page = http.get("/analysis/reach").text
        config = re.search(r'id="analysis-config">(.*?)</script>', page).group(1)
        token = json.loads(config)["csrfToken"]
        assert http.post(REACH, json=inputs, headers={"X-CSRF-Token": token}).status_code == 200
