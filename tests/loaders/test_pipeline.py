"""A load swaps a whole new version in, or changes nothing."""

import json

import pytest

from loaders.pipeline import load_layer, rollback_layer
from loaders.samples import source_path
from mapserver.errors import ServiceError


@pytest.fixture
def libraries(runtime):
    return runtime.catalogue.layer("libraries")


def live_version(scalar, layer_id: str) -> int:
    return scalar(
        "SELECT version FROM app.layer_versions WHERE layer = :l AND status = 'live'", l=layer_id
    )


def test_reload_swaps_in_a_new_version_and_keeps_the_previous(runtime, libraries, scalar, tmp_path):
    before = live_version(scalar, "libraries")
    result = load_layer(
        runtime.engine,
        libraries,
        source_path(libraries.source.path),
        reports_dir=tmp_path,
        run_by="test",
    )
    assert result.version == before + 1 and result.rows_loaded == 16
    assert live_version(scalar, "libraries") == before + 1
    assert scalar("SELECT count(*) FROM layers.libraries") == 16
    assert scalar("SELECT count(*) FROM layers.libraries__previous") == 16
    steps = scalar(
        "SELECT details->'steps_s' FROM app.layer_versions WHERE layer = 'libraries'"
        " AND version = :v",
        v=result.version,
    )  # when each step of the load ended: what a slow one spent
    assert set(steps) == {"copied", "indexed", "live", "analysed"}  # jsonb orders keys its way
    assert 0 < steps["copied"] <= steps["indexed"] <= steps["live"] <= steps["analysed"]
    assert steps["analysed"] <= result.seconds + 0.01
    # ANALYZE ran on the version now live (after the swap), and the retired one is gone.
    assert scalar("SELECT count(*) FROM pg_stats WHERE tablename = 'libraries'") > 0
    assert scalar("SELECT to_regclass('layers.libraries__retired')") is None
    assert (
        scalar(
            "SELECT status FROM app.layer_versions WHERE layer = 'libraries' AND version = :v",
            v=before,
        )
        == "previous"
    )


def test_too_many_rejects_change_nothing(runtime, libraries, scalar, tmp_path):
    source = json.loads(source_path(libraries.source.path).read_text())
    for feature in source["features"][:4]:  # a quarter: polygons in a point layer
        x, y = feature["geometry"]["coordinates"]
        feature["geometry"] = {
            "type": "Polygon",
            "coordinates": [[[x, y], [x + 0.001, y], [x, y + 0.001], [x, y]]],
        }
    bad = tmp_path / "libraries.geojson"
    bad.write_text(json.dumps(source))
    before = live_version(scalar, "libraries")
    with pytest.raises(ServiceError, match=r"4 of 16 rows rejected.*nothing was changed"):
        load_layer(runtime.engine, libraries, bad, reports_dir=tmp_path, run_by="test")
    assert live_version(scalar, "libraries") == before
    assert scalar("SELECT count(*) FROM layers.libraries") == 16
    report = (tmp_path / f"libraries-v{before + 1}-rejects.csv").read_text()
    assert "Polygon in a Point layer" in report
    assert (
        scalar(
            "SELECT status FROM app.layer_versions WHERE layer = 'libraries' AND version = :v",
            v=before + 1,
        )
        == "failed"
    )


def test_missing_column_is_named(runtime, libraries, tmp_path):
    source = json.loads(source_path(libraries.source.path).read_text())
    for feature in source["features"]:
        feature["properties"].pop("Postcode")
    bad = tmp_path / "libraries.geojson"
    bad.write_text(json.dumps(source))
    with pytest.raises(ServiceError, match="no column Postcode"):
        load_layer(runtime.engine, libraries, bad, reports_dir=tmp_path, run_by="test")


def test_not_a_spatial_file(runtime, libraries, tmp_path):
    bad = tmp_path / "libraries.geojson"
    bad.write_text("this is not GeoJSON")
    with pytest.raises(ServiceError, match="Cannot read libraries.geojson"):
        load_layer(runtime.engine, libraries, bad, reports_dir=tmp_path, run_by="test")


def test_features_outside_the_boundary_follow_its_live_version(
    runtime, libraries, scalar, tmp_path
):
    """A layer set to reject them loses the features outside the council boundary; the
    buffered boundary is kept per boundary version, so loading a new boundary (here one
    moved 50 km east) changes what is outside, and rolling it back changes it back."""
    strict = libraries.model_copy(update={"outside_boundary": "reject"})
    catalogue = runtime.catalogue
    source = json.loads(source_path(libraries.source.path).read_text())
    far = source["features"][0]
    far["geometry"]["coordinates"] = [-1.5, 53.4]  # Sheffield
    moved = tmp_path / "libraries.geojson"
    moved.write_text(json.dumps(source))

    def load(**options: object):  # noqa: ANN202
        return load_layer(
            runtime.engine, strict, moved, reports_dir=tmp_path, run_by="test",
            catalogue=catalogue, **options,
        )  # fmt: skip

    result = load(max_reject_ratio=0.1)
    assert (result.rows_loaded, result.rows_rejected) == (15, 1)
    assert "outside the council boundary" in result.rejects_file.read_text()
    live_boundary = (
        "(SELECT id FROM app.layer_versions WHERE layer = 'boundary' AND status = 'live')"
    )
    assert scalar(f"SELECT count(*) FROM app.load_boundaries WHERE version_id = {live_boundary}")

    boundary = catalogue.layer(catalogue.council.boundary_layer)
    shape = json.loads(source_path(boundary.source.path).read_text())
    for feature in shape["features"]:
        rings = feature["geometry"]["coordinates"]
        if feature["geometry"]["type"] == "Polygon":
            rings = [rings]
        for polygon in rings:
            for ring in polygon:
                ring[:] = [[lon + 0.75, lat] for lon, lat in ring]
    shifted = tmp_path / "boundary.geojson"
    shifted.write_text(json.dumps(shape))
    load_layer(runtime.engine, boundary, shifted, reports_dir=tmp_path, run_by="test")
    try:
        with pytest.raises(ServiceError, match=r"16 of 16 rows rejected"):
            load(max_reject_ratio=0.1)  # every library is outside the moved boundary
    finally:
        rollback_layer(runtime.engine, boundary, catalogue)
    assert load(max_reject_ratio=0.1).rows_rejected == 1
    original = source_path(libraries.source.path)  # as the other tests expect it
    load_layer(runtime.engine, libraries, original, reports_dir=tmp_path, run_by="test")


def test_invalid_polygons_are_repaired_and_counted(runtime, scalar, tmp_path):
    """A self-intersecting polygon is repaired (a bow tie becomes its two triangles) and
    counted; one that retraces itself (a line, in any projection) has no area left to
    keep and is rejected."""
    layer = runtime.catalogue.layer("conservation_areas")
    original = source_path(layer.source.path)
    source = json.loads(original.read_text())
    features = source["features"]
    lon, lat = features[0]["geometry"]["coordinates"][0][0]
    bow_tie = [[lon, lat], [lon + 0.001, lat + 0.001], [lon + 0.001, lat], [lon, lat + 0.001]]
    features[0]["geometry"] = {"type": "Polygon", "coordinates": [[*bow_tie, [lon, lat]]]}
    there = [[lon, lat], [lon + 0.001, lat], [lon + 0.002, lat + 0.001]]
    features[1]["geometry"] = {"type": "Polygon", "coordinates": [[*there, *there[1::-1]]]}
    bad = tmp_path / "conservation_areas.geojson"
    bad.write_text(json.dumps(source))
    result = load_layer(
        runtime.engine, layer, bad, reports_dir=tmp_path, run_by="test",
        catalogue=runtime.catalogue, max_reject_ratio=0.5,
    )  # fmt: skip
    try:
        assert (result.rows_repaired, result.rows_rejected) == (1, 1)
        assert result.rows_loaded == len(features) - 1
        assert "geometry could not be repaired" in result.rejects_file.read_text()
        table = "layers.conservation_areas"
        assert scalar(f"SELECT bool_and(ST_IsValid(geom)) FROM {table}")
        name = features[0]["properties"]["name"]
        assert scalar(f"SELECT ST_NumGeometries(geom) FROM {table} WHERE name = :n", n=name) == 2
        assert not scalar(
            f"SELECT count(*) FROM {table} WHERE name = :n", n=features[1]["properties"]["name"]
        )
    finally:
        load_layer(runtime.engine, layer, original, reports_dir=tmp_path, run_by="test")


def test_layer_tables_skip_the_vacuum_inserts_trigger(scalar):
    """Loaded and derived tables alike: that vacuum's lock would hold up the next swap."""
    for table in ("land_ownership", "council_owned_land"):
        options = scalar(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)", t=f"layers.{table}"
        )
        assert "autovacuum_vacuum_insert_threshold=-1" in options, table
