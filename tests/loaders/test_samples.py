"""Sample data loads into an empty database once, reprojected to British National Grid."""

from loaders.samples import load_missing_samples


def test_every_sample_layer_is_live(runtime, scalar):
    for layer in runtime.catalogue.sample_layers:
        assert (
            scalar(
                "SELECT count(*) FROM app.layer_versions WHERE layer = :l AND status = 'live'",
                l=layer.id,
            )
            == 1
        )


def test_samples_are_not_loaded_twice(runtime, scalar, tmp_path):
    before = scalar("SELECT count(*) FROM app.layer_versions")
    assert load_missing_samples(runtime.engine, runtime.catalogue, tmp_path) == []
    assert scalar("SELECT count(*) FROM app.layer_versions") == before


def test_sample_geometry_is_in_british_national_grid(scalar):
    assert scalar("SELECT Find_SRID('layers', 'wards', 'geom')") == 27700
    # Stockport lies around easting 390,000, northing 390,000.
    assert scalar(
        "SELECT bool_and(ST_X(geom) BETWEEN 380000 AND 400000"
        " AND ST_Y(geom) BETWEEN 380000 AND 400000) FROM layers.libraries"
    )
    assert scalar("SELECT count(*) FROM layers.wards") == 21
    assert scalar("SELECT GeometryType(geom) FROM layers.wards LIMIT 1") == "MULTIPOLYGON"


def test_provenance_is_recorded(scalar):
    assert scalar(
        "SELECT sha256 IS NOT NULL AND rows_read = 16 AND rows_loaded = 16"
        " AND crs_in = 'EPSG:4326' AND crs_out = 'EPSG:27700' AND finished_at IS NOT NULL"
        " FROM app.layer_versions WHERE layer = 'libraries' AND status = 'live'"
    )
