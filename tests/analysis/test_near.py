"""The "features near a location" process, through OGC API – Processes over HTTP."""

import time

import pytest

from mapserver.access import create_key

EXECUTE = "/ogc/processes/features-near-location/execution"
POINT = {"type": "Point", "coordinates": [-2.1575, 53.4084]}  # Stockport town centre


def near_sql(layer: str, metres: float) -> str:
    return (
        f"SELECT count(*) FROM layers.{layer} WHERE ST_DWithin(geom, ST_Transform("
        f"ST_SetSRID(ST_MakePoint(-2.1575, 53.4084), 4326), 27700), {metres})"
    )


def test_process_is_listed_and_described(client):
    processes = client.get("/ogc/processes", params={"f": "json"}).json()["processes"]
    assert "features-near-location" in {p["id"] for p in processes}
    description = client.get("/ogc/processes/features-near-location", params={"f": "json"})
    assert set(description.json()["inputs"]) == {"layers", "geometry", "distance"}


def test_sync_execution_matches_sql(client, scalar):
    response = client.post(
        EXECUTE,
        json={
            "inputs": {"layers": ["libraries", "pharmacies"], "geometry": POINT, "distance": 1500}
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()
    for layer in ("libraries", "pharmacies"):
        assert result["layers"][layer]["count"] == scalar(near_sql(layer, 1500))
        distances = [f["properties"]["distance_m"] for f in result["layers"][layer]["features"]]
        assert distances == sorted(distances) and all(d <= 1500 for d in distances)


def test_restricted_layers_respect_the_caller(client, engine, scalar):
    inputs = {"layers": ["hospitals"], "geometry": POINT, "distance": 5000}
    anonymous = client.post(EXECUTE, json={"inputs": {**inputs, "access_role": "admin"}})
    assert anonymous.status_code == 400 and "unknown layer 'hospitals'" in anonymous.text
    key = create_key(engine, "process test", "emergency")[1]
    allowed = client.post(EXECUTE, json={"inputs": inputs}, headers={"X-API-Key": key})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["layers"]["hospitals"]["count"] == scalar(near_sql("hospitals", 5000))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"layers": ["nope"], "geometry": POINT, "distance": 10}, "unknown layer"),
        ({"layers": ["libraries"], "geometry": POINT, "distance": -1}, "distance"),
        ({"layers": ["libraries"], "geometry": POINT, "distance": 10**9}, "distance"),
        ({"layers": ["libraries"], "geometry": {"type": "Circle"}, "distance": 10}, "geometry"),
        ({"layers": "libraries", "geometry": POINT, "distance": 10}, "layers"),
        ({"geometry": POINT, "distance": 10}, "missing input: layers"),
        (
            {
                "layers": ["libraries"],
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                },
                "distance": 10,
            },
            "not valid",
        ),
    ],
)
def test_bad_inputs_are_400(client, inputs, message):
    response = client.post(EXECUTE, json={"inputs": inputs})
    assert response.status_code == 400, response.text
    assert message in response.text


def test_malformed_request_is_400(client):
    response = client.post(
        EXECUTE, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_async_job_is_kept_in_postgresql(client, scalar, engine):
    response = client.post(
        EXECUTE,
        json={"inputs": {"layers": ["libraries"], "geometry": POINT, "distance": 2000}},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201, response.text
    job_url = response.headers["Location"]
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + 30
    while True:
        status = client.get(job_url, params={"f": "json"}).json()["status"]
        if status in ("successful", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == "successful"
    assert scalar("SELECT status FROM app.jobs WHERE identifier = :j", j=job_id) == "successful"
    results = client.get(f"{job_url}/results", params={"f": "json"})
    assert results.status_code == 200
    assert client.get("/ogc/jobs").status_code == 403
    staff = create_key(engine, "jobs test", "staff")[1]
    assert (
        client.get("/ogc/jobs", params={"f": "json"}, headers={"X-API-Key": staff}).status_code
        == 200
    )
