"""The search box's API: gazetteer names, grid references and lat/lon."""

import pytest
from sqlalchemy import text

from mapserver.search import grid_reference


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("SJ 89 90", (389000, 390000)),
        ("sj8990", (389000, 390000)),
        ("SJ 8930 9050", (389300, 390500)),
        ("TQ 30 80", (530000, 180000)),
        ("NN 166 712", (216600, 771200)),
        ("SJ", (300000, 300000)),
        ("SJ 123", None),
        ("XX 12 34", None),
    ],
)
def test_grid_reference(ref, expected):
    assert grid_reference(ref) == (tuple(map(float, expected)) if expected else None)


def results(client, q: str) -> list[dict]:
    response = client.get("/api/search", params={"q": q})
    assert response.status_code == 200
    return response.json()["results"]


def test_names_from_several_layers(client, scalar):
    found = results(client, "bramhall")
    kinds = {r["kind"] for r in found}
    assert {"Library", "Ward"} <= kinds
    first = found[0]
    assert first["label"].lower().startswith("bramhall")
    assert -2.4 < first["lon"] < -1.9 and 53.3 < first["lat"] < 53.5


def test_streets_come_from_assets(client, scalar):
    street = scalar("SELECT street FROM layers.gullies WHERE street IS NOT NULL LIMIT 1")
    found = [r for r in results(client, street) if r["kind"] == "Street"]
    assert found and found[0]["label"] == street and found[0]["bbox"] is not None


def test_typo_still_finds(client):
    assert any(r["label"].startswith("Marple") for r in results(client, "Marpel"))


@pytest.mark.parametrize(
    "q", ["SJ 89 90", "389000, 390000", "389000 390000", "53.4067, -2.1669", "-2.1669, 53.4067"]
)
def test_coordinates(client, q):
    first = results(client, q)[0]
    assert first["kind"] == "Coordinates"
    assert abs(first["lon"] - -2.1669) < 0.001 and abs(first["lat"] - 53.4067) < 0.001


def test_hostile_and_empty_queries(client):
    assert client.get("/api/search", params={"q": ""}).status_code == 422
    assert client.get("/api/search", params={"q": "x" * 101}).status_code == 422
    for q in ["%", "_", "'; DROP TABLE app.gazetteer; --", "\\"]:
        assert client.get("/api/search", params={"q": q}).status_code == 200
    assert results(client, "bramhall")


@pytest.mark.parametrize(
    ("lon", "lat", "inside", "council"),
    [
        (-2.1575, 53.4084, True, "Stockport Metropolitan Borough Council"),
        (-2.2426, 53.4808, False, "Manchester"),  # Manchester city centre
        (-2.0, 53.0, False, None),  # Staffordshire: no neighbours layer there
    ],
)
def test_locate(client, lon, lat, inside, council):
    body = client.get("/api/locate", params={"lon": lon, "lat": lat}).json()
    assert body["inside"] is inside and body["council"] == council
    if council and not inside:
        assert f"it is in {council}" in body["message"]


def test_locate_validates(client):
    assert client.get("/api/locate", params={"lon": "x", "lat": 53}).status_code == 422
    assert client.get("/api/locate", params={"lon": 500, "lat": 53}).status_code == 422


@pytest.fixture
def gazetteer_rows(engine):
    """Two places of the same name far apart, and a postcode, for one test."""
    rows = [
        ("Twin Lane", "Street", -2.25, 53.36),  # the borough's south-west
        ("Twin Lane", "Street", -2.02, 53.45),  # its north-east
        ("SK1 3XE", "Postcode", -2.155, 53.41),
    ]
    with engine.begin() as conn:
        for label, kind, lon, lat in rows:
            conn.execute(
                text(
                    "INSERT INTO app.gazetteer (layer, label, kind, geom) VALUES"
                    " ('libraries', :label, :kind, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
                ),
                {"label": label, "kind": kind, "lon": lon, "lat": lat},
            )
    yield rows
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM app.gazetteer WHERE label IN ('Twin Lane', 'SK1 3XE')"))


def test_equal_names_nearest_the_map_centre_first(client, gazetteer_rows):
    for near, expected_lon in (("-2.26,53.35", -2.25), ("-2.01,53.46", -2.02)):
        found = client.get("/api/search", params={"q": "Twin Lane", "near": near}).json()
        twins = [r for r in found["results"] if r["label"] == "Twin Lane"]
        assert len(twins) == 2 and twins[0]["lon"] == pytest.approx(expected_lon)
    for bad in ("nowhere", "200,100"):
        assert client.get("/api/search", params={"q": "Twin", "near": bad}).status_code == 422


@pytest.mark.parametrize("q", ["SK1 3XE", "sk13xe", "Sk1  3xe"])
def test_postcodes_with_or_without_the_space(client, gazetteer_rows, q):
    assert results(client, q)[0]["label"] == "SK1 3XE"
