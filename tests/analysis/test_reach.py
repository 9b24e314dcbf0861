"""Incident reach: counts as PostGIS finds them, residents by area share, emergency keys
through OGC API – Processes, and reach along a small network routed by pgRouting."""

import dataclasses
import json

import pytest

from analysis.reach import incident_reach
from layers.model import Layer
from layers.tables import ensure_layer_tables
from loaders.pipeline import load_layer
from mapserver.access import Principal
from tests.analysis.conftest import SITE_SQL, geojson_of

EXECUTE = "/ogc/processes/incident-reach/execution"
LAYERS = ["defibrillators", "polling_stations", "land_ownership", "lsoas", "hospitals"]


@pytest.fixture(scope="module")
def reached(client, keys, town_centre) -> dict:
    inputs = {"geometry": town_centre, "distance": 400, "layers": LAYERS}
    response = client.post(EXECUTE, json={"inputs": inputs}, headers=keys["emergency"])
    assert response.status_code == 200, response.text
    return {s["layer"]: s for s in response.json()["sections"]}


def test_counts_match_postgis(reached, scalar, town_centre):
    for layer in LAYERS:
        expected = scalar(
            f"SELECT count(*) FROM layers.{layer} WHERE ST_DWithin(geom, {SITE_SQL}, 400)",
            site=json.dumps(town_centre),
        )
        assert reached[layer]["count"] == expected, layer
    assert reached["land_ownership"]["count"] > 0


def test_population_is_apportioned_by_area_share(reached, scalar, town_centre):
    expected = scalar(
        f"SELECT sum(294800.0 / 191 * ST_Area(ST_Intersection(geom, ST_Buffer({SITE_SQL}, 400,"
        f" 'quad_segs=32'))) / ST_Area(geom)) FROM layers.lsoas",
        site=json.dumps(town_centre),
    )
    lsoas = reached["lsoas"]
    assert lsoas["population"]["estimate"] == round(expected)
    assert "Census 2021" in lsoas["population"]["source"]
    assert sum(f["properties"]["population_estimate"] for f in lsoas["features"]) == (
        pytest.approx(expected, abs=1)
    )


def test_emergency_keys_see_no_restricted_fields(reached):
    parcel = reached["land_ownership"]["features"][0]["properties"]
    assert "title_number" in parcel and "proprietor_name" not in parcel
    assert "proprietor_name" not in {f["name"] for f in reached["land_ownership"]["fields"]}


def test_anonymous_callers_cannot_run_it(client, town_centre):
    inputs = {"geometry": town_centre, "distance": 400, "layers": ["defibrillators"]}
    assert client.post(EXECUTE, json={"inputs": inputs}).status_code == 403


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"distance": 100, "layers": ["nope"]}, "unknown layer 'nope'"),
        ({"distance": 100, "layers": ["road_casualties"]}, "unknown layer"),  # staff only
        ({"distance": 50_000, "layers": ["lsoas"]}, "distance"),
        ({"distance": 100, "layers": ["lsoas"], "mode": "walking"}, "no walking network"),
        ({"distance": 100, "layers": ["lsoas"], "mode": "flying"}, "mode"),
    ],
)
def test_bad_inputs_are_400(client, keys, town_centre, inputs, message):
    body = {"inputs": {"geometry": town_centre, **inputs}}
    response = client.post(EXECUTE, json=body, headers=keys["emergency"])
    assert response.status_code == 400, response.text
    assert message in response.json()["description"]


# --- along a network -------------------------------------------------------------------
# A U-shaped street in British National Grid near the town centre: O east to E (in two
# pieces, through M), north to N, west back to W. P is 110 m north of O in a straight
# line but 900 m away along the street; Q is just off the street 200 m east of O.
X, Y = 389_600.0, 390_100.0
STREETS = [((0, 0), (200, 0)), ((200, 0), (400, 0)), ((400, 0), (400, 100)), ((400, 100), (0, 100))]
SITES = {"P": (0, 110), "Q": (200, -10)}


def _collection(features: list[tuple[dict, dict]]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": g} for g, p in features]})  # fmt: skip


@pytest.fixture(scope="module")
def network_catalogue(runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("network")
    layers = {
        "test_streets": Layer(id="test_streets", title="Test streets", theme="Test",
                              geometry="LineString", attribution="test", network=["walking"],
                              fields=[{"name": "name", "label": "Name"}]),
        "test_sites": Layer(id="test_sites", title="Test sites", theme="Test",
                            geometry="Point", attribution="test",
                            fields=[{"name": "name", "label": "Name"}]),
    }  # fmt: skip
    files = {
        "test_streets": _collection([
            ({"type": "LineString", "coordinates": [[X + a, Y + b], [X + c, Y + d]]},
             {"name": f"street {i}"}) for i, ((a, b), (c, d)) in enumerate(STREETS)]),
        "test_sites": _collection([
            ({"type": "Point", "coordinates": [X + x, Y + y]}, {"name": name})
            for name, (x, y) in SITES.items()]),
    }  # fmt: skip
    ensure_layer_tables(runtime.engine, list(layers.values()))
    for layer_id, text in files.items():
        path = folder / f"{layer_id}.geojson"
        path.write_text(text)
        load_layer(runtime.engine, layers[layer_id], path, reports_dir=folder, run_by="test",
                   source_crs="EPSG:27700")  # fmt: skip
    # Only the test's streets are a network here (the sample paths layer is one too).
    others = {k: v.model_copy(update={"network": []}) for k, v in runtime.catalogue.layers.items()}
    return dataclasses.replace(runtime.catalogue, layers={**others, **layers})


def lonlat(engine, x: float, y: float) -> dict:
    return geojson_of(engine, "SELECT ST_SetSRID(ST_MakePoint(:x, :y), 27700)", x=x, y=y)


@pytest.mark.parametrize(
    ("distance", "straight", "walking", "street_m"),
    [(300, {"P", "Q"}, {"Q"}, 300), (1000, {"P", "Q"}, {"P", "Q"}, 900), (150, {"P"}, set(), 150)],
)
def test_network_reach_follows_the_streets(
    runtime, network_catalogue, distance, straight, walking, street_m
):
    origin = lonlat(runtime.engine, X, Y)
    found = {}
    for mode in ("straight", "walking"):
        inputs = {"geometry": origin, "distance": distance, "layers": ["test_sites"], "mode": mode}
        result = incident_reach(runtime.engine, network_catalogue, Principal("staff"), inputs)
        found[mode] = {f["properties"]["name"] for f in result["sections"][0]["features"]}
        if mode == "walking":
            assert result["parameters"]["network_reached_m"] == pytest.approx(street_m, abs=0.5)
    assert found == {"straight": straight, "walking": walking}


def test_a_burst_main_and_a_flood_extent(client, keys, engine, scalar):
    line = geojson_of(
        engine,
        "SELECT ST_MakeLine(ST_MakePoint(389400, 390000), ST_MakePoint(390200, 390300))"
        "::geometry(LineString, 27700)",
    )
    extent = geojson_of(
        engine, "SELECT ST_Buffer(ST_MakePoint(389800, 390500), 300)::geometry(Polygon, 27700)"
    )
    for incident in (line, extent):
        inputs = {"geometry": incident, "distance": 250, "layers": ["land_ownership", "lsoas"]}
        response = client.post(EXECUTE, json={"inputs": inputs}, headers=keys["emergency"])
        assert response.status_code == 200, response.text
        found = {s["layer"]: s["count"] for s in response.json()["sections"]}
        for layer in ("land_ownership", "lsoas"):
            assert found[layer] == scalar(
                f"SELECT count(*) FROM layers.{layer} WHERE ST_DWithin(geom, {SITE_SQL}, 250)",
                site=json.dumps(incident),
            )
