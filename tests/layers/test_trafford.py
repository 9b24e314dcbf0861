"""Trafford, a second council, set up from configuration and data alone: its catalogue
validates, its real layers load into a fresh PostGIS database, and the real service
publishes them.

pygeoapi reads one configuration per process (and this test session's is Stockport's),
so the Trafford service runs in a subprocess, started the way an operator starts it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pyogrio
import pytest
import yaml
from sqlalchemy import text

from layers.catalogue import Catalogue, load_catalogue
from layers.pygeoapi_config import render_config
from loaders.pipeline import LoadResult
from loaders.samples import load_missing_samples, source_path
from mapserver import runtime as runtime_
from mapserver.settings import PROJECT_DIR, Settings

from ..conftest import free_port, fresh_database

TRAFFORD = PROJECT_DIR / "layers" / "trafford"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Features in each real file (data/trafford/README.md); every one must load.
FEATURES = {
    "boundary": 1,
    "defibrillators": 185,
    "conservation_areas": 21,
    "listed_buildings": 265,
    "trees": 15_638,
    "care_homes": 56,
    "schools": 103,
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(TRAFFORD)


@pytest.fixture(scope="module")
def trafford_database_url() -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with fresh_database("mapserver_trafford") as url:
        yield url


@pytest.fixture(scope="module")
def trafford(
    trafford_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[runtime_.Runtime, list[LoadResult]]]:
    """The Trafford runtime after its first start: sample layers loaded."""
    state = tmp_path_factory.mktemp("trafford-state")
    rt = runtime_.start(
        Settings(database_url=trafford_database_url, catalogue_dir=TRAFFORD, state_dir=state)
    )
    try:
        yield rt, load_missing_samples(rt.engine, rt.catalogue, state / "loads")
    finally:
        rt.close()


@pytest.fixture(scope="module")
def sql(trafford):
    engine = trafford[0].engine

    def run(query: str, **params: object) -> list:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params))

    return run


def test_catalogue_validates_and_config_publishes_its_public_layers(catalogue):
    council = catalogue.council
    assert (council.id, council.code, council.short_name) == ("trafford", "E08000009", "Trafford")
    assert set(catalogue.layers) == set(FEATURES)
    assert all(layer.sample and layer.source for layer in catalogue.layers.values())
    # The profile's extent encloses the real boundary, to within rounding.
    bounds = pyogrio.read_info(source_path(catalogue.layer("boundary").source.path))["total_bounds"]
    west, south, east, north = council.bbox
    assert west <= bounds[0] < west + 1e-3 and south <= bounds[1] < south + 1e-3
    assert east - 1e-3 < bounds[2] <= east and north - 1e-3 < bounds[3] <= north

    rendered = render_config(catalogue)
    assert "layers/trafford/" in rendered and "tockport" not in rendered
    config = yaml.safe_load(rendered)
    public = {layer.id: layer for layer in catalogue.public_layers}
    collections = {k: v for k, v in config["resources"].items() if v["type"] == "collection"}
    assert set(collections) == set(public) == set(FEATURES)
    for layer_id, resource in collections.items():
        (provider,) = resource["providers"]
        assert provider["table"] == public[layer_id].table_name
        assert provider["properties"] == [f.name for f in public[layer_id].public_fields]
        assert resource["extents"]["spatial"]["bbox"] == list(council.bbox)
    assert config["metadata"]["provider"]["name"] == "Trafford Council"


def test_every_layer_loads_from_its_real_file_with_nothing_rejected(catalogue, trafford, sql):
    _, results = trafford
    by_layer = {result.layer: result for result in results}
    assert set(by_layer) == set(FEATURES)
    for layer in catalogue.layers.values():
        in_file = pyogrio.read_info(source_path(layer.source.path))["features"]
        assert in_file == FEATURES[layer.id]
        result = by_layer[layer.id]
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (in_file, in_file, 0)
        ((rows, srid),) = sql(
            f"SELECT count(*), Find_SRID('layers', '{layer.table_name}', 'geom')"
            f' FROM layers."{layer.table_name}"'
        )
        assert (rows, srid) == (in_file, 27700), layer.id


def test_loaded_values_are_typed_and_located(sql):
    # Every point lies in Trafford (street trees up to 31 m beyond the ONS line).
    for table in ("defibrillators", "listed_buildings", "trees", "care_homes", "schools"):
        ((outside,),) = sql(
            f"SELECT count(*) FROM layers.{table} t, layers.boundary b"
            " WHERE NOT ST_DWithin(t.geom, b.geom, 50)"
        )
        assert outside == 0, table
    assert sql("SELECT grade, count(*) FROM layers.listed_buildings GROUP BY 1 ORDER BY 1") == [
        ("I", 6),
        ("II", 249),
        ("II*", 10),
    ]
    ((entry_rows, listed_on),) = sql(
        "SELECT count(*), min(listed_on)::text FROM layers.listed_buildings"
        " WHERE list_entry = 1389616"
    )
    assert entry_rows == 4 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", listed_on)
    ((capacity_known, capacity_total),) = sql(
        "SELECT count(capacity), sum(capacity) FROM layers.schools"
    )
    assert capacity_known == 99 and capacity_total > 30_000


def test_samples_are_not_loaded_twice(trafford, sql, tmp_path):
    rt, _ = trafford
    ((before,),) = sql("SELECT count(*) FROM app.layer_versions")
    assert load_missing_samples(rt.engine, rt.catalogue, tmp_path) == []
    assert sql("SELECT count(*) FROM app.layer_versions") == [(before,)]


@pytest.fixture(scope="module")
def service(catalogue, trafford, trafford_database_url, tmp_path_factory) -> Iterator[httpx.Client]:
    """`mapserver run` for Trafford in its own process, configured by environment alone."""
    folder = tmp_path_factory.mktemp("trafford-service")
    config = folder / "pygeoapi.yml"
    config.write_text(render_config(catalogue), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSERVER_")}
    env.pop("DATABASE_URL", None)
    env |= {
        "DATABASE_URL": trafford_database_url,
        "MAPSERVER_COUNCIL": "trafford",
        "MAPSERVER_PYGEOAPI_CONFIG": str(config),
        "MAPSERVER_STATE_DIR": str(folder / "state"),
    }
    log_path = folder / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mapserver.cli", "run", "--port", str(port)],
            env=env,
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_text() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            deadline = time.monotonic() + 45
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"the Trafford service exited ({process.returncode}):\n{log_text()}"
                    )
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the Trafford service did not answer /healthz:\n{log_text()}")
                time.sleep(0.2)
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"the Trafford service ignored SIGTERM:\n{log_text()}")
    assert process.returncode in (0, 128 + signal.SIGTERM), log_text()


def test_health_reports_every_trafford_layer(service):
    health = service.get("/healthz").json()
    assert health["status"] == "ok"
    assert {layer: info["rows"] for layer, info in health["layers"].items()} == FEATURES


def test_collections_are_the_trafford_layers(service, catalogue):
    body = service.get("/ogc/collections", params={"f": "json"}).json()
    collections = {c["id"]: c for c in body["collections"]}
    assert set(collections) == {layer.id for layer in catalogue.public_layers} == set(FEATURES)
    assert collections["defibrillators"]["title"] == "Defibrillators"
    landing = service.get("/ogc", params={"f": "json"}).json()
    assert landing["title"] == "Trafford maps: OGC API"


def test_all_defibrillators_are_published(service, sql):
    response = service.get(
        "/ogc/collections/defibrillators/items", params={"f": "json", "limit": 1000}
    )
    assert response.status_code == 200
    body = response.json()
    published = {f["id"]: f["properties"]["location"] for f in body["features"]}
    stored = dict(sql("SELECT fid, location FROM layers.defibrillators"))
    assert len(body["features"]) == body["numberMatched"] == len(stored) == 185
    assert published == stored


def all_items(client: httpx.Client, collection: str, **params: object) -> list[dict]:
    """Every feature of a query, following the server's next links."""
    features: list[dict] = []
    url: str | None = f"/ogc/collections/{collection}/items"
    query: dict | None = {"f": "json", "limit": 1000, **params}
    while url:
        page = client.get(url, params=query).json()
        features += page["features"]
        nxt = [link["href"] for link in page.get("links", []) if link["rel"] == "next"]
        url, query = (nxt[0], None) if nxt and page["features"] else (None, None)
    return features


@pytest.mark.parametrize(
    ("collection", "bbox"),
    [
        ("trees", (-2.36, 53.40, -2.31, 53.43)),  # Sale and Stretford: paged
        ("defibrillators", (-2.40, 53.37, -2.32, 53.41)),  # Altrincham
        ("listed_buildings", (-2.38, 53.38, -2.33, 53.40)),
    ],
)
def test_bbox_in_crs84_matches_sql(service, sql, collection, bbox):
    features = all_items(service, collection, bbox=",".join(map(str, bbox)), **{"bbox-crs": CRS84})
    expected = sorted(
        fid
        for (fid,) in sql(
            f"SELECT fid FROM layers.{collection} WHERE ST_Intersects("
            "ST_Transform(geom, 4326), ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
            a=bbox[0],
            b=bbox[1],
            c=bbox[2],
            d=bbox[3],
        )
    )
    assert len(expected) > 5
    assert sorted(f["id"] for f in features) == expected


def test_map_page_names_trafford(service, catalogue):
    response = service.get("/")
    assert response.status_code == 200
    page = response.text
    assert "Trafford Council" in page and "Trafford maps" in page
    assert "Stockport" not in page
    embedded = re.search(
        r'<script type="application/json" id="map-config">(.*?)</script>', page, re.S
    )
    assert embedded, "the map page carries no configuration"
    config = json.loads(embedded.group(1))
    assert config["council"]["name"] == "Trafford Council"
    assert config["council"]["bbox"] == list(catalogue.council.bbox)
    assert {layer["id"] for layer in config["layers"]} == set(FEATURES)
    assert {layer["id"] for layer in config["layers"] if layer["visible"]} == {
        "boundary",
        "defibrillators",
    }


def test_data_readme_names_every_file_and_the_licence():
    data = PROJECT_DIR / "data" / "trafford"
    readme = (data / "README.md").read_text(encoding="utf-8")
    assert "Open Government Licence v3.0" in readme
    for path in sorted(data.glob("*.geojson")):
        assert path.name in readme
        assert path.stat().st_mode & 0o777 == 0o644
