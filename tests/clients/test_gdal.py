"""GDAL's OAPIF driver (ogrinfo, ogr2ogr from Debian's gdal-bin) against the live server.

Every count is checked against SQL, and a layer copied to GeoPackage is compared with the
database attribute by attribute and geometry by geometry. GDAL 3.6 asks for 10 features a
page unless told otherwise, hence ``-oo PAGE_SIZE=1000`` everywhere, as the README says.
"""

import os
import re
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text

from .helpers import BBOX, BBOX_SQL, RESTRICTED_FIELD, RESTRICTED_LAYERS, bbox_params

PAGE = ["-oo", "PAGE_SIZE=1000"]
LAYER_LINE = re.compile(r"^\d+: (\S+) \(title: ")


def gdal_version() -> tuple[int, int]:
    out = subprocess.run(["ogrinfo", "--version"], capture_output=True, text=True, check=True)
    major, minor = re.search(r"GDAL (\d+)\.(\d+)", out.stdout).groups()
    return int(major), int(minor)


def run(
    tool: str, *args: str, key: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """One GDAL command; with ``key``, every request carries it in ``X-API-Key``."""
    command = [tool, *args]
    if key is not None:
        command += ["--config", "GDAL_HTTP_HEADERS", f"X-API-Key: {key}"]
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "NO_PROXY": "127.0.0.1,localhost"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done


def listed_layers(ogc_url: str, key: str | None = None) -> set[str]:
    out = run("ogrinfo", "-ro", "-q", f"OAPIF:{ogc_url}", *PAGE, key=key).stdout
    return {m.group(1) for line in out.splitlines() if (m := LAYER_LINE.match(line))}


def feature_count(ogc_url: str, layer: str, *args: str, key: str | None = None) -> int:
    """What ``ogrinfo -so`` reports (numberMatched, or GDAL's own count of the features
    when it filters on the client side)."""
    out = run("ogrinfo", "-ro", "-so", f"OAPIF:{ogc_url}", *PAGE, layer, *args, key=key).stdout
    return int(re.search(r"^Feature Count: (\d+)$", out, re.M).group(1))


def copy_to_gpkg(
    ogc_url: str, target: Path, layer: str, *args: str, key: str | None = None
) -> Path:
    """The layer as a GeoPackage, each feature keeping its id (the server's) as its FID."""
    run(
        "ogr2ogr", "-f", "GPKG", "-preserve_fid", str(target), f"OAPIF:{ogc_url}", *PAGE,
        layer, *args, key=key,
    )  # fmt: skip
    return target


def gpkg_geometry(blob: bytes) -> shapely.Geometry:
    """A GeoPackage geometry blob: "GP", version, flags, srs_id, an envelope, then WKB."""
    assert blob[:2] == b"GP"
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 0x07]
    return shapely.from_wkb(blob[8 + envelope :])


def gpkg_rows(path: Path, layer: str) -> tuple[list[str], dict[int, tuple]]:
    """The attribute columns and {fid: (*attributes, geometry)} of a GeoPackage layer."""
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{layer}")')]
        geometry_column, srs_id = conn.execute(
            "SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
        ).fetchone()
        assert srs_id == 4326, f"{layer} stored with SRS {srs_id}, not 4326 (lon/lat)"
        attributes = [c for c in columns if c not in ("fid", geometry_column)]
        selected = ", ".join(f'"{c}"' for c in ["fid", *attributes, geometry_column])
        rows = {
            row[0]: (*row[1:-1], gpkg_geometry(row[-1]))
            for row in conn.execute(f'SELECT {selected} FROM "{layer}"')
        }
    return attributes, rows


def database_rows(engine, layer, names: list[str]) -> dict[int, tuple]:
    """{id: (*attributes, geometry in lon/lat)} straight from the layer's table."""
    columns = ", ".join(f'"{n}"' for n in names)
    query = (
        f'SELECT "{layer.id_field}", {columns}, ST_AsBinary(ST_Transform(geom, 4326))'
        f' FROM layers."{layer.table_name}"'
    )
    with engine.connect() as conn:
        return {
            row[0]: (*row[1:-1], shapely.from_wkb(bytes(row[-1])))
            for row in conn.execute(text(query))
        }


def ids_in_gpkg(path: Path, layer: str) -> set[int]:
    with closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute(f'SELECT fid FROM "{layer}"')}


def sql_ids(engine, query: str, **params) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(text(query), params).scalars())


# --- collections ---------------------------------------------------------------------------


def test_lists_the_public_collections_only(ogc_url, catalogue):
    layers = listed_layers(ogc_url)
    assert layers == {layer.id for layer in catalogue.public_layers}
    assert not layers & set(RESTRICTED_LAYERS)


@pytest.mark.parametrize("layer", RESTRICTED_LAYERS)
def test_restricted_layer_cannot_be_opened_anonymously(ogc_url, layer):
    by_name = run("ogrinfo", "-ro", "-so", f"OAPIF:{ogc_url}", *PAGE, layer, check=False)
    assert by_name.returncode != 0
    assert "Feature Count" not in by_name.stdout
    # The collection's own URL, which GDAL also accepts as a data source.
    by_url = run(
        "ogrinfo", "-ro", "-so", f"OAPIF:{ogc_url}/collections/{layer}", *PAGE, check=False
    )
    assert by_url.returncode != 0
    assert "Feature Count" not in by_url.stdout


# --- counts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer", ["libraries", "polling_stations", "watercourses", "wards", "planning_applications"]
)
def test_feature_count_equals_sql(ogc_url, scalar, layer):
    assert feature_count(ogc_url, layer) == scalar(f"SELECT count(*) FROM layers.{layer}")


def test_whole_layer_read_over_several_pages(ogc_url, engine, tmp_path):
    """1,203 features at 1,000 a page: GDAL follows the next link to the end."""
    copied = copy_to_gpkg(ogc_url, tmp_path / "gap.gpkg", "greenspace_access_points")
    expected = sql_ids(engine, "SELECT fid FROM layers.greenspace_access_points")
    assert len(expected) > 1000
    assert ids_in_gpkg(copied, "greenspace_access_points") == expected


# --- bbox (-spat) --------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["greenspace_access_points", "lsoas", "watercourses"])
def test_spatial_filter_equals_sql(ogc_url, engine, scalar, tmp_path, layer):
    """GDAL sends ``-spat`` as a CRS84 ``bbox``; the SQL is test_ogc.py's, exact in lon/lat."""
    spat = ["-spat", *map(str, BBOX)]
    expected = sql_ids(engine, BBOX_SQL.format(what="fid", table=layer), **bbox_params())
    assert expected, f"the bbox should hold some {layer}"
    assert expected != sql_ids(engine, f"SELECT fid FROM layers.{layer}")
    assert feature_count(ogc_url, layer, *spat) == len(expected)
    copied = copy_to_gpkg(ogc_url, tmp_path / f"{layer}.gpkg", layer, *spat)
    assert ids_in_gpkg(copied, layer) == expected


def test_spatial_filter_is_sent_to_the_server(ogc_url):
    debug = run(
        "ogrinfo", "-ro", "-so", f"OAPIF:{ogc_url}", *PAGE, "greenspace_access_points",
        "-spat", *map(str, BBOX), "--debug", "on",
    ).stderr  # fmt: skip
    sent = re.findall(r"Fetch\((\S+/items\?\S*bbox=[^)]+)\)", debug)
    assert sent, debug
    numbers = [float(v) for v in re.search(r"bbox=([^&)]+)", sent[-1]).group(1).split(",")]
    assert numbers == pytest.approx(BBOX)


# --- attribute filters (-where) ------------------------------------------------------------

WHERE = [
    # (layer, OGR SQL -where, PostgreSQL, query parameter GDAL sends or None: client side)
    ("polling_stations", "ward_name = 'Bramhall North'", "ward_name = 'Bramhall North'",
     "ward_name=Bramhall%20North"),
    ("polling_stations", "station_id = 10850", "station_id = 10850", "station_id=10850"),
    ("polling_stations", "ward_name = 'Bramhall North' AND station_id > 10848",
     "ward_name = 'Bramhall North' AND station_id > 10848", "ward_name=Bramhall%20North"),
    ("watercourses", "form = 'canal' OR length_m > 5000", "form = 'canal' OR length_m > 5000",
     None),
    ("pharmacies", "name LIKE 'Boots%'", "name LIKE 'Boots%'", None),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "where", "sql", "sent"), WHERE)
def test_attribute_filter_equals_sql(ogc_url, engine, tmp_path, layer, where, sql, sent):
    expected = sql_ids(engine, f"SELECT fid FROM layers.{layer} WHERE {sql}")
    assert expected, f"{sql} should match some {layer}"
    debug = run(
        "ogrinfo", "-ro", "-so", f"OAPIF:{ogc_url}", *PAGE, layer, "-where", where,
        "--debug", "on",
    )  # fmt: skip
    count = int(re.search(r"^Feature Count: (\d+)$", debug.stdout, re.M).group(1))
    assert count == len(expected)
    if sent is not None:  # GDAL turned (part of) the filter into a query parameter
        assert re.search(rf"Fetch\(\S+/items\?\S*{re.escape(sent)}", debug.stderr), debug.stderr
    copied = copy_to_gpkg(ogc_url, tmp_path / f"{layer}.gpkg", layer, "-where", where)
    assert ids_in_gpkg(copied, layer) == expected


# --- a whole layer to GeoPackage -----------------------------------------------------------


@pytest.mark.parametrize("layer_id", ["polling_stations", "watercourses"])
def test_ogr2ogr_copies_a_layer_intact(ogc_url, engine, catalogue, tmp_path, layer_id):
    layer = catalogue.layers[layer_id]
    names = [f.name for f in layer.public_fields]
    copied = copy_to_gpkg(ogc_url, tmp_path / f"{layer_id}.gpkg", layer_id)
    attributes, got = gpkg_rows(copied, layer_id)
    assert attributes == names
    expected = database_rows(engine, layer, names)
    assert got.keys() == expected.keys()
    for fid, row in expected.items():
        *values, geometry = got[fid]
        *want, exact = row
        assert values == want, f"{layer_id} {fid}: attributes differ"
        assert geometry.geom_type == exact.geom_type, f"{layer_id} {fid}"
        assert shapely.equals_exact(geometry, exact, tolerance=1e-6), (
            f"{layer_id} {fid}: geometry differs by more than 1e-6 degrees"
        )


# --- with an API key ------------------------------------------------------------------------

needs_headers = pytest.mark.skipif(
    gdal_version() < (3, 6), reason="GDAL_HTTP_HEADERS (custom HTTP headers) came in GDAL 3.6"
)


@needs_headers
def test_api_key_shows_the_restricted_layers(ogc_url, api_keys, catalogue):
    staff = listed_layers(ogc_url, key=api_keys["staff"])
    assert staff == set(catalogue.layers)
    emergency = listed_layers(ogc_url, key=api_keys["emergency"])
    assert {"hospitals", "fire_stations"} <= emergency
    assert "road_casualties" not in emergency


@needs_headers
def test_staff_layer_is_readable_with_a_key(ogc_url, api_keys, engine, tmp_path):
    """1,600 casualties over two pages: the key goes with every request, next pages too."""
    key = api_keys["staff"]
    expected = sql_ids(engine, "SELECT fid FROM layers.road_casualties")
    assert feature_count(ogc_url, "road_casualties", key=key) == len(expected) > 1000
    copied = copy_to_gpkg(ogc_url, tmp_path / "rc.gpkg", "road_casualties", key=key)
    attributes, rows = gpkg_rows(copied, "road_casualties")
    assert rows.keys() == expected
    assert {"sex", "age_band"} <= set(attributes)


@needs_headers
def test_restricted_field_only_with_a_staff_key(ogc_url, api_keys):
    layer, field = RESTRICTED_FIELD
    # -nocount: a large layer has no numberMatched, and GDAL would page through all of it.
    summary = ["ogrinfo", "-ro", "-so", "-nocount", f"OAPIF:{ogc_url}", *PAGE, layer]
    anonymous = run(*summary).stdout
    assert f"{field}:" not in anonymous and "proprietor_category:" in anonymous
    staff = run(*summary, key=api_keys["staff"]).stdout
    assert f"{field}: String" in staff
