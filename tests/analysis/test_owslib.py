"""OWSLib, a client no one here wrote, lists, describes and executes each analysis, with
the API key of the role it needs, and starts a job that is then read back."""

import time

import pytest
from owslib.ogcapi.processes import Processes

from tests.clients.test_owslib import near_result, ogc_exception


@pytest.fixture(scope="module")
def ogc_url(base_url: str) -> str:
    return f"{base_url}/ogc"


def test_processes_are_listed_and_described(ogc_url):
    listed = {p["id"] for p in Processes(ogc_url).processes()}
    assert {"site-constraints", "incident-reach", "ownership"} <= listed
    assert {"geometry", "address", "layers", "distance", "mode"} <= set(
        Processes(ogc_url).process("incident-reach")["inputs"]
    )


@pytest.mark.parametrize(
    ("process", "role", "inputs", "first"),
    [
        ("site-constraints", "staff", "flood", "conservation_areas"),
        ("incident-reach", "emergency", "reach", "defibrillators"),
        ("ownership", "staff", "flood", "land_ownership"),
    ],
)
def test_each_process_executes(ogc_url, keys, flood_site, town_centre, process, role, inputs,
                               first):  # fmt: skip
    values = {
        "flood": {"geometry": flood_site},
        "reach": {"geometry": town_centre, "distance": 500, "layers": ["defibrillators", "lsoas"]},
    }[inputs]
    client = Processes(ogc_url, headers=keys[role])
    result = near_result(client.execute(process, inputs=values))
    assert result["sections"][0]["layer"] == first
    assert result["site"]["geometry"]["type"] in ("Polygon", "Point")


def test_an_emergency_key_cannot_run_a_staff_analysis(ogc_url, keys, flood_site):
    with pytest.raises(RuntimeError) as excinfo:
        Processes(ogc_url, headers=keys["emergency"]).execute(
            "site-constraints", inputs={"geometry": flood_site}
        )
    assert "Forbidden" in ogc_exception(excinfo)


def test_an_async_job_through_owslib(ogc_url, client, keys, town_centre):
    inputs = {"geometry": town_centre, "distance": 200, "layers": ["polling_stations"]}
    started = Processes(ogc_url, headers=keys["emergency"]).execute(
        "incident-reach", inputs=inputs, async_=True
    )
    job = f"/ogc/jobs/{started['jobID']}"
    deadline = time.monotonic() + 30
    while client.get(job, headers=keys["emergency"]).json()["status"] not in (
        "successful",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    result = client.get(f"{job}/results", params={"f": "json"}, headers=keys["emergency"]).json()
    assert near_result(result)["sections"][0]["layer"] == "polling_stations"
