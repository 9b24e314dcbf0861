"""The site constraints report through OGC API – Processes: areas and shares as PostGIS
computes them, who may run it, and bad sites refused with the reason."""

import json

import pytest

from tests.analysis.conftest import SITE_SQL, geojson_of

EXECUTE = "/ogc/processes/site-constraints/execution"


def covered_share(scalar, site: dict, table: str, where: str = "TRUE") -> float:
    return scalar(
        f"SELECT coalesce(ST_Area(ST_Union(ST_Intersection(geom, {SITE_SQL}))), 0)"
        f" / ST_Area({SITE_SQL}) FROM layers.{table}"
        f" WHERE ST_Intersects(geom, {SITE_SQL}) AND {where}",
        site=json.dumps(site),
    )


@pytest.fixture(scope="module")
def report(client, keys, flood_site) -> dict:
    response = client.post(
        EXECUTE, json={"inputs": {"geometry": flood_site}}, headers=keys["staff"]
    )
    assert response.status_code == 200, response.text
    return response.json()


def sections(report: dict) -> dict[str, dict]:
    return {s["layer"]: s for s in report["sections"]}


def test_flood_zone_shares_match_postgis(report, scalar, flood_site):
    flood = sections(report)["flood_zones"]
    assert flood["count"] >= 2 and 0 < flood["share"] <= 1
    assert flood["share"] == pytest.approx(
        covered_share(scalar, flood_site, "flood_zones"), abs=1e-4
    )
    groups = {g["value"]: g["share"] for g in flood["groups"]}
    for zone in ("2", "3"):
        expected = covered_share(scalar, flood_site, "flood_zones", f"zone = '{zone}'")
        assert groups[zone] == pytest.approx(expected, abs=1e-4)
    assert 0 < groups["3"] < groups["2"]  # zone 2 includes zone 3
    assert report["site"]["area_m2"] == pytest.approx(
        scalar(f"SELECT ST_Area({SITE_SQL})", site=json.dumps(flood_site)), abs=0.1
    )


def test_every_constraint_layer_is_reported_with_parcels_for_staff(report, scalar, flood_site):
    found = sections(report)
    assert set(found) == {
        "flood_zones", "conservation_areas", "tree_preservation_orders", "land_ownership",
        "planning_applications",
    }  # fmt: skip
    parcels = found["land_ownership"]
    expected = scalar(
        f"SELECT count(*) FROM layers.land_ownership WHERE ST_Intersects(geom, {SITE_SQL})",
        site=json.dumps(flood_site),
    )
    assert parcels["on_site"] == expected > 0
    on_site = [f for f in parcels["features"] if f["properties"]["distance_m"] == 0]
    assert {"tenure", "proprietor_category", "proprietor_name"} <= set(on_site[0]["properties"])
    overlap = sum(f["properties"]["overlap_m2"] for f in on_site)
    assert overlap == pytest.approx(
        scalar(
            f"SELECT sum(ST_Area(ST_Intersection(geom, {SITE_SQL}))) FROM layers.land_ownership"
            f" WHERE ST_Intersects(geom, {SITE_SQL})",
            site=json.dumps(flood_site),
        ),
        rel=1e-3,
    )
    trees = found["tree_preservation_orders"]
    assert trees["buffer_m"] == 20
    assert all(f["properties"]["distance_m"] <= 20 for f in trees["features"])


def test_a_point_picks_the_parcel_under_it(client, keys, engine, scalar):
    point = geojson_of(engine, "SELECT ST_PointOnSurface(geom) FROM layers.land_ownership"
                       " ORDER BY fid LIMIT 1")  # fmt: skip
    response = client.post(EXECUTE, json={"inputs": {"geometry": point}}, headers=keys["staff"])
    assert response.status_code == 200, response.text
    site = response.json()["site"]
    assert site["kind"] == "parcel"
    assert site["area_m2"] == pytest.approx(
        scalar("SELECT ST_Area(geom) FROM layers.land_ownership ORDER BY fid LIMIT 1"), abs=0.1
    )


@pytest.mark.parametrize("role", [None, "emergency"])
def test_only_staff_may_run_it(client, keys, flood_site, role):
    headers = keys[role] if role else {}
    response = client.post(EXECUTE, json={"inputs": {"geometry": flood_site}}, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"


BOWTIE = {"type": "Polygon", "coordinates": [[[-2.16, 53.40], [-2.15, 53.41], [-2.15, 53.40],
          [-2.16, 53.41], [-2.16, 53.40]]]}  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"geometry": BOWTIE}, "not valid"),
        ({"geometry": {"type": "Point", "coordinates": [53.4, -2.15]}}, "Great Britain"),
        ({"geometry": {"type": "LineString", "coordinates": [[-2.16, 53.40], [-2.15, 53.41]]}},
         "polygon"),
        ({}, "geometry"),
        ({"address": "zzqqxx nowhere"}, "no place"),
        ({"geometry": {"type": "Polygon", "coordinates": [[[-2.2, 53.38], [-2.1, 53.38],
          [-2.1, 53.42], [-2.2, 53.42], [-2.2, 53.38]]]}}, "larger than 500 hectares"),
        ({"geometry": {"type": "Point", "coordinates": [-2.15, 53.40]}, "buffer": 10_000},
         "buffer"),
    ],
)  # fmt: skip
def test_bad_sites_are_400_even_asynchronously(client, keys, inputs, message):
    for prefer in ({}, {"Prefer": "respond-async"}):
        response = client.post(
            EXECUTE, json={"inputs": inputs}, headers={**keys["staff"], **prefer}
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "InvalidParameterValue" and message in body["description"]


def test_an_address_stands_for_the_parcel_there(client, keys, scalar):
    label = scalar(
        "SELECT g.label FROM app.gazetteer g JOIN layers.land_ownership p"
        " ON ST_Intersects(p.geom, ST_Transform(g.geom, 27700))"
        " WHERE g.layer = 'libraries' ORDER BY g.label LIMIT 1"
    )
    response = client.post(EXECUTE, json={"inputs": {"address": label}}, headers=keys["staff"])
    assert response.status_code == 200, response.text
    site = response.json()["site"]
    assert site["kind"] == "parcel" and label in site["label"]
