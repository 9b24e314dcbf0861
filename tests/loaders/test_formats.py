"""Every format councils receive loads into the same rows: the libraries written as
GeoPackage, zipped Shapefile, GeoJSON lines, KML, GML, CSV (lon/lat and easting/northing),
and HM Land Registry INSPIRE Index Polygons GML."""

import zipfile

import geopandas as gpd
import pyogrio
import pytest

from layers.model import Layer
from loaders.pipeline import load_layer
from loaders.samples import source_path

# Writing the fixtures in other formats launders field names; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def libraries_frame(runtime) -> gpd.GeoDataFrame:
    layer = runtime.catalogue.layer("libraries")
    return gpd.read_file(source_path(layer.source.path))


def coordinates(scalar) -> list:
    return scalar(
        "SELECT array_agg(ARRAY[round(ST_X(geom)::numeric, 0), round(ST_Y(geom)::numeric, 0)]"
        " ORDER BY name) FROM layers.libraries"
    )


def load(runtime, path, tmp_path, layer=None, **kwargs):
    return load_layer(
        runtime.engine, layer or runtime.catalogue.layer("libraries"), path,
        reports_dir=tmp_path, run_by="test", catalogue=runtime.catalogue, **kwargs,
    )  # fmt: skip


@pytest.fixture
def expected(scalar):
    return coordinates(scalar)


def write_gpkg(frame, tmp_path):
    path = tmp_path / "two_layers.gpkg"
    frame.iloc[:3].to_file(path, layer="other", driver="GPKG")
    frame.to_file(path, layer="libraries", driver="GPKG")
    return path


def write_zipped_shapefile(frame, tmp_path):
    frame.to_file(tmp_path / "libraries.shp")
    archive = tmp_path / "libraries.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for part in tmp_path.glob("libraries.*"):
            if part.suffix != ".zip":
                zipped.write(part, f"export/{part.name}")
    return archive


def write_geojsonseq(frame, tmp_path):
    path = tmp_path / "libraries.geojsonl"
    pyogrio.write_dataframe(frame, path, driver="GeoJSONSeq")
    return path


def write_kml(frame, tmp_path):
    path = tmp_path / "libraries.kml"
    pyogrio.write_dataframe(frame, path, driver="LIBKML")
    return path


def write_gml(frame, tmp_path):
    path = tmp_path / "libraries.gml"
    pyogrio.write_dataframe(frame.to_crs(27700), path, driver="GML")
    return path


def write_csv_lonlat(frame, tmp_path):
    path = tmp_path / "libraries.csv"
    table = frame.drop(columns="geometry").assign(lon=frame.geometry.x, lat=frame.geometry.y)
    table.to_csv(path, index=False)
    return path


def write_csv_bng(frame, tmp_path):
    path = tmp_path / "libraries_bng.csv"
    bng = frame.to_crs(27700)
    table = bng.drop(columns="geometry").assign(Easting=bng.geometry.x, Northing=bng.geometry.y)
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "writer",
    [
        write_gpkg,
        write_zipped_shapefile,
        write_geojsonseq,
        write_kml,
        write_gml,
        write_csv_lonlat,
        write_csv_bng,
    ],  # fmt: skip
)
def test_format_loads_the_same_rows(runtime, libraries_frame, expected, scalar, tmp_path, writer):
    path = writer(libraries_frame, tmp_path)
    source = runtime.catalogue.layer("libraries").source
    if writer is write_gpkg:
        source = source.model_copy(update={"layer": "libraries"})
    result = load(runtime, path, tmp_path, source=source)
    assert result.rows_loaded == 16 and result.rows_rejected == 0
    assert coordinates(scalar) == expected
    assert scalar("SELECT count(*) FROM layers.libraries WHERE postcode IS NULL") == 0


INSPIRE_GML = """<?xml version="1.0" encoding="UTF-8"?>
<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml"
    xmlns:LR="www.landregistry.gov.uk">
{members}
</wfs:FeatureCollection>
"""
INSPIRE_MEMBER = """  <gml:featureMember>
    <LR:PREDEFINED gml:id="LR.{n}">
      <LR:INSPIREID>{inspire_id}</LR:INSPIREID>
      <LR:LABEL>{inspire_id}</LR:LABEL>
      <LR:NATIONALCADASTRALREFERENCE>{inspire_id}</LR:NATIONALCADASTRALREFERENCE>
      <LR:VALIDFROM>2019-03-04T11:32:17.000</LR:VALIDFROM>
      <LR:GEOMETRY><gml:Polygon srsName="urn:ogc:def:crs:EPSG::27700"><gml:outerBoundaryIs>
        <gml:LinearRing><gml:coordinates decimal="." cs="," ts=" ">{ring}</gml:coordinates>
        </gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></LR:GEOMETRY>
    </LR:PREDEFINED>
  </gml:featureMember>"""


def test_land_registry_inspire_index_polygons(runtime, scalar, tmp_path):
    members = []
    for n in range(5):
        x, y = 389000 + n * 30, 390000
        ring = f"{x},{y} {x + 25},{y} {x + 25},{y + 40} {x},{y + 40} {x},{y}"
        members.append(INSPIRE_MEMBER.format(n=n, inspire_id=52000000 + n, ring=ring))
    path = tmp_path / "Land_Registry_Cadastral_Parcels.gml"
    path.write_text(INSPIRE_GML.format(members="\n".join(members)))
    layer = Layer.model_validate(
        {
            "id": "test_inspire", "title": "INSPIRE", "theme": "Test", "geometry": "MultiPolygon",
            "attribution": "HM Land Registry", "key": "inspire_id",
            "fields": [
                {"name": "inspire_id", "type": "integer", "label": "INSPIRE ID",
                 "source": "INSPIREID"},
                {"name": "valid_from", "type": "datetime", "label": "Valid from",
                 "source": "VALIDFROM"},
            ],
        }
    )  # fmt: skip
    result = load(runtime, path, tmp_path, layer)
    assert result.rows_loaded == 5
    assert scalar("SELECT round(sum(ST_Area(geom))) FROM layers.test_inspire") == 5 * 25 * 40
    assert scalar("SELECT min(inspire_id) FROM layers.test_inspire") == 52000000
    assert scalar("SELECT Find_SRID('layers', 'test_inspire', 'geom')") == 27700


def test_geometry_only_source(runtime, scalar, tmp_path):
    """A GeoPackage with no attribute columns (a street grid) loads every row."""
    lines = gpd.GeoSeries.from_wkt(
        [f"LINESTRING ({389000 + 100 * n} 390000, {389100 + 100 * n} 390000)" for n in range(4)],
        crs=27700,
    )
    path = tmp_path / "grid.gpkg"
    gpd.GeoDataFrame(geometry=lines).to_file(path, driver="GPKG")
    layer = Layer.model_validate(
        {"id": "test_bare_lines", "title": "Bare lines", "theme": "Test",
         "geometry": "LineString", "attribution": "test", "fields": []}
    )  # fmt: skip
    result = load(runtime, path, tmp_path, layer)
    assert result.rows_loaded == 4
    assert scalar("SELECT round(sum(ST_Length(geom))) FROM layers.test_bare_lines") == 400
