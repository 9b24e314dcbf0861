"""The synthetic data generator writes real files, at a small scale: the same seed gives
the same bytes, every feature lies in the borough, counts follow the scale, and the
normal loader reads every file with no rejects."""

import hashlib
import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from layers.catalogue import load_catalogue
from layers.model import Layer
from loaders.prepare import ARROW_TYPES, Context, prepare_batch
from loaders.read import open_reader
from loaders.samples import source_path
from loaders.synth import generate
from mapserver.errors import ServiceError
from mapserver.settings import PROJECT_DIR

SCALE = 0.02
FILES = {
    "streetlights": "streetlights.csv",
    "gullies": "gullies.gpkg",
    "defibrillators": "defibrillators.geojson",
    "planning_applications": "planning_applications.zip",
    "land_ownership": "land_ownership.gpkg",
    "flood_zones": "flood_zones.geojson",
    "conservation_areas": "conservation_areas.geojson",
    "tree_preservation_orders": "tree_preservation_orders.geojson",
    "paths": "paths.gpkg",
}
# Features at scale 1 of the layers whose count follows the scale.
COUNTS = {
    "streetlights": 30_000,
    "gullies": 40_000,
    "planning_applications": 9_000,
    "land_ownership": 130_000,
    "tree_preservation_orders": 600,
    "defibrillators": 250,
}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(PROJECT_DIR / "layers" / "stockport")


@pytest.fixture(scope="module")
def files(catalogue, tmp_path_factory):
    return generate(catalogue, tmp_path_factory.mktemp("synth"), scale=SCALE)


@pytest.fixture(scope="module")
def boundary(catalogue):
    layer = catalogue.layer(catalogue.council.boundary_layer)
    frame = pyogrio.read_dataframe(source_path(layer.source.path)).to_crs(catalogue.council.crs)
    return shapely.union_all(frame.geometry.to_numpy())


def read(path, layer: Layer, crs: str) -> gpd.GeoDataFrame:
    """A generated file as a GIS user opens it, in the council's CRS."""
    if path.suffix == ".csv":
        table = pd.read_csv(path)
        points = gpd.points_from_xy(table[layer.source.x_field], table[layer.source.y_field])
        return gpd.GeoDataFrame(table, geometry=points, crs=layer.source.crs).to_crs(crs)
    return pyogrio.read_dataframe(path, layer=layer.source.layer).to_crs(crs)


def digests(paths) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_writes_every_synthetic_layer_but_the_derived_one(files):
    assert {layer_id: path.name for layer_id, path in files.items()} == FILES
    folder = next(iter(files.values())).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES.values())


def test_same_seed_same_bytes(catalogue, files, tmp_path):
    again = generate(catalogue, tmp_path / "again", scale=SCALE)
    assert digests(again.values()) == digests(files.values())
    other = generate(catalogue, tmp_path / "other", scale=SCALE, seed=7, only=["gullies"])
    assert digests(other.values()) != digests([files["gullies"]])


def test_a_layer_alone_is_the_same_as_with_the_others(catalogue, files, tmp_path):
    alone = generate(catalogue, tmp_path, scale=SCALE, only=["tree_preservation_orders"])
    assert list(alone) == ["tree_preservation_orders"]
    assert digests(alone.values()) == digests([files["tree_preservation_orders"]])


def test_derived_and_real_layers(catalogue, tmp_path):
    assert generate(catalogue, tmp_path, scale=SCALE, only=["council_owned_land"]) == {}
    with pytest.raises(ServiceError, match="Not synthetic layers: libraries"):
        generate(catalogue, tmp_path, scale=SCALE, only=["libraries"])
    assert list(tmp_path.iterdir()) == []


def test_every_feature_lies_in_the_borough(catalogue, files, boundary):
    within = boundary.buffer(0.05)  # coordinates are rounded to 1 cm
    shapely.prepare(within)
    for layer_id, path in files.items():
        features = read(path, catalogue.layer(layer_id), catalogue.council.crs)
        assert len(features), layer_id
        assert shapely.covered_by(features.geometry.to_numpy(), within).all(), layer_id


def test_counts_follow_the_scale(catalogue, files, tmp_path):
    double = generate(catalogue, tmp_path, scale=2 * SCALE, only=list(COUNTS))
    for layer_id, base in COUNTS.items():
        assert pyogrio.read_info(files[layer_id])["features"] == round(base * SCALE), layer_id
        assert pyogrio.read_info(double[layer_id])["features"] == round(base * 2 * SCALE)


def test_loader_reads_every_file_with_no_rejects(catalogue, files, boundary):
    """The files go through the normal loader: every field parses as its catalogue type,
    every geometry is valid and inside the boundary."""
    for layer_id, path in files.items():
        layer = catalogue.layer(layer_id)
        reader = open_reader(path, layer.source)
        context = Context(layer=layer, source_crs=reader.crs, boundary=boundary)
        for batch in reader.batches:
            prepared = prepare_batch(batch, context)
            assert prepared.rejects == [], (layer_id, prepared.rejects[:3])
            assert (prepared.repaired, prepared.outside) == (0, 0), layer_id
            for spec in layer.fields:
                column = prepared.table[spec.name]
                assert column.type == ARROW_TYPES[spec.type], (layer_id, spec.name)
                if spec.name not in ("decided_date", "last_cleansed"):
                    assert column.null_count == 0, (layer_id, spec.name)


def test_keys_are_unique(catalogue, files):
    for layer_id, path in files.items():
        key = catalogue.layer(layer_id).key
        if key:
            column = read(path, catalogue.layer(layer_id), catalogue.council.crs)[key]
            assert column.is_unique, layer_id


def test_land_parcels_tessellate_the_borough(catalogue, files, boundary):
    parcels = read(files["land_ownership"], catalogue.layer("land_ownership"), "EPSG:27700")
    areas = parcels.area.to_numpy()
    assert areas.sum() == pytest.approx(boundary.area, rel=0.01)
    union = shapely.union_all(parcels.geometry.to_numpy())
    assert union.area == pytest.approx(areas.sum(), rel=0.001)  # barely any overlap
    council = parcels["proprietor_category"] == "council"
    assert 0.05 <= council.mean() <= 0.08
    assert set(parcels["proprietor_category"]) == {
        "council",
        "housing association",
        "company",
        "crown",
        "private",
    }
    private = parcels["proprietor_category"] == "private"
    assert (parcels.loc[private, "proprietor_name"] == "Private individual").all()


def test_planning_applications_are_small_sites_over_three_years(catalogue, files):
    sites = read(
        files["planning_applications"], catalogue.layer("planning_applications"), "EPSG:27700"
    )
    assert sites.area.between(80, 3500).all()
    received = pd.to_datetime(sites["received"])
    assert (received.max() - received.min()).days > 3 * 365 - 30
    pending = sites["status"] == "Pending"
    assert sites.loc[pending, "decided"].isna().all()
    assert sites.loc[~pending, "decided"].notna().all()
    assert sites["reference"].str.fullmatch(r"DC/\d{6}").all()


def test_zipped_shapefile_holds_its_parts(files):
    with zipfile.ZipFile(files["planning_applications"]) as archive:
        names = set(archive.namelist())
    assert {f"planning_applications.{ext}" for ext in ("shp", "shx", "dbf", "prj")} <= names
    assert "README.txt" in names


def test_flood_zone_2_contains_zone_3(catalogue, files):
    zones = read(files["flood_zones"], catalogue.layer("flood_zones"), "EPSG:27700")
    assert set(zones["zone"]) == {"2", "3"}
    two, three = (
        shapely.union_all(zones.loc[zones["zone"] == z].geometry.to_numpy()) for z in ("2", "3")
    )
    assert shapely.difference(three, two).area < 0.001 * three.area
    assert two.area > 2 * three.area


def test_defibrillators_are_mostly_at_host_sites(catalogue, files):
    defibs = read(files["defibrillators"], catalogue.layer("defibrillators"), "EPSG:27700")
    hosts = pd.concat(
        read(source_path(catalogue.layer(h).source.path), catalogue.layer(h), "EPSG:27700")
        for h in catalogue.council.synthetic.host_site_layers
    )
    distance = np.array([hosts.distance(p).min() for p in defibs.geometry])
    assert (distance <= 20.5).mean() >= 0.6
    assert set(defibs["access"]) - {"24/7", "24/7 (code from 999)"} <= set(
        defibs.loc[defibs["cabinet_type"] == "Indoor", "access"]
    )


def test_paths_are_noded_at_junctions(files):
    """A walking network: lines meet only at their ends, as OS Open Roads' links do."""
    lines = pyogrio.read_dataframe(files["paths"]).geometry.to_numpy()
    assert len(lines) > 100 and set(shapely.get_type_id(lines)) == {1}
    noded = shapely.get_parts(shapely.node(shapely.multilinestrings(lines)))
    assert len(noded) == len(lines)
