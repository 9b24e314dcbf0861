"""Bad sources: each gives one clear message, the database unchanged and the previous
version still served."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loaders.pipeline import load_layer
from loaders.samples import source_path
from mapserver.errors import ServiceError
from mapserver.settings import PROJECT_DIR


@pytest.fixture
def libraries(runtime):
    return runtime.catalogue.layer("libraries")


@pytest.fixture
def unchanged(scalar):
    """Asserts, after the test, that the live libraries are what they were before."""

    def state():
        return (
            scalar(
                "SELECT version FROM app.layer_versions"
                " WHERE layer = 'libraries' AND status = 'live'"
            ),
            scalar(
                "SELECT md5(string_agg(ST_AsText(geom) || name, ',' ORDER BY fid))"
                " FROM layers.libraries"
            ),
        )

    before = state()
    yield
    assert state() == before
    assert not scalar(
        "SELECT count(*) FROM pg_tables"
        " WHERE schemaname = 'layers' AND tablename LIKE 'libraries__v%'"
    )


def load(runtime, layer, location, tmp_path, **kwargs):
    return load_layer(
        runtime.engine, layer, location, reports_dir=tmp_path, run_by="test",
        catalogue=runtime.catalogue, **kwargs,
    )  # fmt: skip


def libraries_geojson(layer) -> dict:
    return json.loads(source_path(layer.source.path).read_text())


def test_truncated_geojson(runtime, libraries, unchanged, tmp_path):
    text = source_path(libraries.source.path).read_text()
    path = tmp_path / "libraries.geojson"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ServiceError, match="Cannot read libraries.geojson"):
        load(runtime, libraries, path, tmp_path)


def test_truncated_geopackage(runtime, libraries, unchanged, tmp_path):
    import geopandas as gpd

    path = tmp_path / "libraries.gpkg"
    gpd.read_file(source_path(libraries.source.path)).to_file(path, driver="GPKG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ServiceError, match="Cannot read libraries.gpkg"):
        load(runtime, libraries, path, tmp_path)


def csv_rows(layer, count=16, bad=0) -> str:
    lines = ["Name,Address,Postcode,Type,Email,Website,Easting,Northing"]
    for n in range(count):
        easting = "not-a-number" if n < bad else str(389000 + n)
        lines.append(f"Library {n},{n} High Street,SK1 {n}AA,Local,a@b.c,w,{easting},390000")
    return "\n".join(lines) + "\n"


def test_wrong_encoding_is_named(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_bytes(csv_rows(libraries).replace("Library 3", "Bibliothèque").encode("latin-1"))
    with pytest.raises(ServiceError, match="not valid UTF-8") as error:
        load(runtime, libraries, path, tmp_path)
    assert "source.encoding" in str(error.value)


def test_declared_encoding_loads(runtime, libraries, scalar, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_bytes(csv_rows(libraries).replace("Library 3", "Bibliothèque").encode("latin-1"))
    source = libraries.source.model_copy(update={"encoding": "latin-1"})
    try:
        load(runtime, libraries, path, tmp_path, source=source)
        assert scalar("SELECT count(*) FROM layers.libraries WHERE name = 'Bibliothèque'") == 1
    finally:
        load(runtime, libraries, source_path(libraries.source.path), tmp_path)


def test_mixed_geometry_types(runtime, libraries, unchanged, tmp_path):
    source = libraries_geojson(libraries)
    x, y = source["features"][0]["geometry"]["coordinates"]
    source["features"][0]["geometry"] = {
        "type": "LineString", "coordinates": [[x, y], [x + 0.001, y]],
    }  # fmt: skip
    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps(source))
    with pytest.raises(ServiceError, match=r"row 1, geometry: LineString in a Point layer"):
        load(runtime, libraries, path, tmp_path)


def test_eastings_declared_as_lonlat(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_text(csv_rows(libraries))
    with pytest.raises(ServiceError, match="look like eastings and northings"):
        load(runtime, libraries, path, tmp_path, source_crs="EPSG:4326")


def test_lonlat_declared_as_british_national_grid(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "libraries.geojson"
    path.write_text(json.dumps(libraries_geojson(libraries)))
    with pytest.raises(ServiceError, match="look like longitude and latitude"):
        load(runtime, libraries, path, tmp_path, source_crs="EPSG:27700")


def test_no_crs_is_refused(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_text(csv_rows(libraries).replace("Easting,Northing", "X,Y"))
    source = libraries.source.model_copy(update={"x_field": "X", "y_field": "Y"})
    with pytest.raises(ServiceError, match="does not say which coordinate reference system"):
        load(runtime, libraries, path, tmp_path, source=source)


def test_csv_with_ten_percent_bad_rows(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_text(csv_rows(libraries, count=100, bad=10))
    with pytest.raises(ServiceError, match=r"10 of 100 rows rejected \(the limit is 1%\)"):
        load(runtime, libraries, path, tmp_path)
    report = next(tmp_path.glob("libraries-v*-rejects.csv")).read_text().splitlines()
    assert len(report) == 11 and report[1].startswith("1,geometry")


def test_reject_ratio_can_be_raised_per_run(runtime, libraries, scalar, tmp_path):
    path = tmp_path / "libraries.csv"
    path.write_text(csv_rows(libraries, count=100, bad=10))
    try:
        result = load(runtime, libraries, path, tmp_path, max_reject_ratio=0.2)
        assert (result.rows_loaded, result.rows_rejected) == (90, 10)
    finally:
        load(runtime, libraries, source_path(libraries.source.path), tmp_path)


def test_duplicate_keys_are_rejected(runtime, tmp_path):
    layer = runtime.catalogue.layer("libraries").model_copy(update={"key": "name"})
    source = libraries_geojson(layer)
    source["features"][5]["properties"]["Name"] = source["features"][2]["properties"]["Name"]
    path = tmp_path / "dupes.geojson"
    path.write_text(json.dumps(source))
    with pytest.raises(ServiceError, match=r"row 6, name: duplicate name \(first at row 3\)"):
        load(runtime, layer, path, tmp_path)


def write_zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_zip_with_path_traversal(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "evil.zip"
    write_zip(path, {"../../escaped.geojson": b"{}", "libraries.geojson": b"{}"})
    with pytest.raises(ServiceError, match="outside the archive"):
        load(runtime, libraries, path, tmp_path)
    assert not (tmp_path.parent / "escaped.geojson").exists()


def test_zip_bomb(runtime, libraries, unchanged, tmp_path):
    path = tmp_path / "bomb.zip"
    write_zip(path, {"libraries.geojson": b" " * (200 << 20)})
    with pytest.raises(ServiceError, match="zip bomb"):
        load(runtime, libraries, path, tmp_path)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow.geojson":
            time.sleep(3)
        self.send_response(200)
        if self.path == "/huge.geojson":
            self.send_header("Content-Length", str(50 << 30))
            self.end_headers()
            self.wfile.write(b"{" * 1024)
            return
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_that_times_out(runtime, libraries, unchanged, tmp_path, http_server):
    with pytest.raises(ServiceError, match="timed out after 1 s"):
        load(runtime, libraries, f"{http_server}/slow.geojson", tmp_path, download_timeout=1)


def test_url_that_is_too_large(runtime, libraries, unchanged, tmp_path, http_server):
    with pytest.raises(ServiceError, match="over the 10 MB limit"):
        load(runtime, libraries, f"{http_server}/huge.geojson", tmp_path,
             max_download_bytes=10 * 1000**2)  # fmt: skip


def test_killed_load_leaves_the_previous_version(runtime, database_url, scalar, tmp_path):
    """SIGKILL a `mapserver load` mid-copy: the live table is untouched, and the next load
    records the killed one as interrupted."""
    layer = "greenspace_access_points"
    rows = 400_000
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("access_type,lon,lat\n")
        for n in range(rows):
            out.write(
                f"Pedestrian,{-2.2 + (n % 1000) * 1e-4:.6f},{53.38 + (n // 1000) * 1e-4:.6f}\n"
            )
    version_sql = f"SELECT max(version) FROM app.layer_versions WHERE layer = '{layer}'"
    live_sql = f"SELECT version FROM app.layer_versions WHERE layer = '{layer}' AND status = 'live'"
    live, count = scalar(live_sql), scalar(f"SELECT count(*) FROM layers.{layer}")
    started = scalar(version_sql)
    env = {**os.environ, "DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "mapserver.cli", "load", layer, str(path), "--quiet"],
        env=env, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while scalar(version_sql) == started:  # wait until the load has begun
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert child.poll() is None, "the load finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert scalar(live_sql) == live
    assert scalar(f"SELECT count(*) FROM layers.{layer}") == count
    time.sleep(0.5)  # the server notices the dropped connection and rolls back
    result = load_layer(
        runtime.engine, runtime.catalogue.layer(layer),
        source_path(runtime.catalogue.layer(layer).source.path),
        reports_dir=tmp_path, run_by="test", catalogue=runtime.catalogue,
    )  # fmt: skip
    assert result.rows_loaded == count
    assert scalar(
        f"SELECT message FROM app.layer_versions WHERE layer = '{layer}' AND version = :v",
        v=started + 1,
    ).startswith("interrupted")


def test_staging_table_of_a_killed_load_is_dropped_by_the_next(
    runtime, libraries, scalar, tmp_path
):
    """A load killed after its staging table was committed (while indexing) leaves that
    table, not served: the next load marks the version interrupted and drops it."""
    killed = scalar("SELECT max(version) + 1 FROM app.layer_versions WHERE layer = 'libraries'")
    staging = f"layers.libraries__v{killed}"
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO app.layer_versions (layer, version, status, source_uri, crs_out, run_by)"
            " VALUES ('libraries', %(v)s, 'loading', 'killed', 'EPSG:27700', 'test')",
            {"v": killed},
        )
        conn.exec_driver_sql(f"CREATE TABLE {staging} AS SELECT * FROM layers.libraries")
    result = load(runtime, libraries, source_path(libraries.source.path), tmp_path)
    assert result.version == killed + 1
    assert scalar(f"SELECT to_regclass('{staging}') IS NULL")
    assert scalar(
        "SELECT status || ': ' || message FROM app.layer_versions"
        " WHERE layer = 'libraries' AND version = :v",
        v=killed,
    ).startswith("failed: interrupted")
    assert not scalar(
        "SELECT count(*) FROM pg_tables"
        " WHERE schemaname = 'layers' AND tablename LIKE 'libraries__v%'"
    )
