"""Ownership: the parcels on a site with their titles (names for staff only) and the
council's land nearby, as PostGIS finds them."""

import json

import pytest

from tests.analysis.conftest import SITE_SQL, geojson_of

EXECUTE = "/ogc/processes/ownership/execution"


@pytest.fixture(scope="module")
def site(engine) -> dict:
    """A 200 m square around a council-owned parcel."""
    return geojson_of(
        engine,
        "SELECT ST_Envelope(ST_Buffer(ST_PointOnSurface(geom), 100))"
        " FROM layers.council_owned_land ORDER BY fid LIMIT 1",
    )


def test_parcels_and_council_land_match_postgis(client, keys, site, scalar):
    response = client.post(
        EXECUTE, json={"inputs": {"geometry": site, "nearby": 300}}, headers=keys["staff"]
    )
    assert response.status_code == 200, response.text
    parcels, council = response.json()["sections"]
    expected = scalar(
        f"SELECT count(*) FROM layers.land_ownership WHERE ST_Intersects(geom, {SITE_SQL})"
        f" AND ST_Area(ST_Intersection(geom, {SITE_SQL})) > 0.01",
        site=json.dumps(site),
    )
    assert parcels["count"] == expected > 0
    first = parcels["features"][0]["properties"]
    assert {"title_number", "tenure", "proprietor_category", "proprietor_name"} <= set(first)
    categories = {s["value"]: s["parcels"] for s in parcels["summary"]["proprietor_category"]}
    assert categories["council"] >= 1 and sum(categories.values()) == expected
    assert council["layer"] == "council_owned_land"
    assert council["count"] == scalar(
        f"SELECT count(*) FROM layers.council_owned_land WHERE ST_DWithin(geom, {SITE_SQL}, 300)",
        site=json.dumps(site),
    )


def test_only_staff_may_run_it(client, keys, site):
    for headers in ({}, keys["emergency"]):
        response = client.post(EXECUTE, json={"inputs": {"geometry": site}}, headers=headers)
        assert response.status_code == 403
