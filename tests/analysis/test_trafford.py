"""Another council from configuration alone: Trafford's real listed buildings and
conservation areas in a site report, its care homes and schools in an incident's reach."""

import json

import pytest
from sqlalchemy import text

from analysis.constraints import site_constraints
from analysis.reach import incident_reach
from loaders.pipeline import load_layer
from loaders.samples import source_path
from mapserver import runtime as runtime_
from mapserver.access import Principal
from mapserver.settings import PROJECT_DIR, Settings
from tests.analysis.conftest import SITE_SQL, geojson_of
from tests.conftest import fresh_database

LAYERS = ("boundary", "listed_buildings", "conservation_areas", "care_homes", "schools")
STAFF = Principal("staff")


@pytest.fixture(scope="module")
def trafford(tmp_path_factory):
    state = tmp_path_factory.mktemp("trafford-analyses")
    with fresh_database("mapserver_trafford_analyses") as url:
        folder = PROJECT_DIR / "layers" / "trafford"
        rt = runtime_.start(Settings(database_url=url, state_dir=state, catalogue_dir=folder))
        try:
            for layer_id in LAYERS:
                layer = rt.catalogue.layer(layer_id)
                load_layer(rt.engine, layer, source_path(layer.source.path), reports_dir=state,
                           run_by="test", catalogue=rt.catalogue)  # fmt: skip
            yield rt
        finally:
            rt.close()


def count(rt, query: str, site: dict) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(text(query), {"site": json.dumps(site)}).scalar_one()


def test_listed_buildings_near_a_site(trafford):
    site = geojson_of(trafford.engine, "SELECT ST_Envelope(ST_Buffer(geom, 80)) FROM"
                      " layers.listed_buildings ORDER BY fid LIMIT 1")  # fmt: skip
    report = site_constraints(trafford.engine, trafford.catalogue, STAFF, {"geometry": site})
    found = {s["layer"]: s for s in report["sections"]}
    assert set(found) == {"listed_buildings", "conservation_areas"}
    near = f"SELECT count(*) FROM layers.listed_buildings WHERE ST_DWithin(geom, {SITE_SQL}, 50)"
    assert found["listed_buildings"]["count"] == count(trafford, near, site) >= 1


def test_care_homes_and_schools_within_reach(trafford):
    point = geojson_of(trafford.engine, "SELECT geom FROM layers.care_homes ORDER BY fid LIMIT 1")
    inputs = {"geometry": point, "distance": 1500, "layers": ["care_homes", "schools"]}
    result = incident_reach(trafford.engine, trafford.catalogue, STAFF, inputs)
    for section in result["sections"]:
        assert section["count"] == count(
            trafford, f"SELECT count(*) FROM layers.{section['layer']}"
            f" WHERE ST_DWithin(geom, {SITE_SQL}, 1500)", point,
        )  # fmt: skip
    assert result["sections"][0]["count"] >= 1
