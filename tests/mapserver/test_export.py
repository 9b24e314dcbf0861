"""Downloads of what a query selects: GeoJSON, CSV and GeoPackage, access rules kept."""

import csv
import io

import pyogrio
import pytest

from mapserver.access import create_key


def test_geojson_download_matches_the_filter(client, scalar):
    response = client.get(
        "/api/export/polling_stations",
        params={"format": "geojson", "filter": "ward_name = 'Bramhall North'"},
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    features = response.json()["features"]
    assert len(features) == scalar(
        "SELECT count(*) FROM layers.polling_stations WHERE ward_name = 'Bramhall North'"
    )


def test_csv_download(client, scalar):
    response = client.get("/api/export/libraries", params={"format": "csv", "sortby": "name"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == scalar("SELECT count(*) FROM layers.libraries")
    assert rows[0]["wkt"].startswith("POINT (-2.")
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)


def test_geopackage_download(client, scalar, tmp_path):
    response = client.get("/api/export/wards", params={"format": "gpkg"})
    path = tmp_path / "wards.gpkg"
    path.write_bytes(response.content)
    info = pyogrio.read_info(path)
    assert info["features"] == 21 and "27700" in info["crs"]


def test_restricted_fields_and_layers_stay_closed(client, engine):
    response = client.get("/api/export/land_ownership", params={"format": "csv", "limit": 5})
    assert "proprietor_name" not in response.text.splitlines()[0]
    assert client.get("/api/export/road_casualties").status_code == 404
    key = create_key(engine, "export test", "staff")[1]
    staff = client.get(
        "/api/export/road_casualties", params={"format": "csv"}, headers={"X-API-Key": key}
    )
    assert staff.status_code == 200 and "age_band" in staff.text.splitlines()[0]


@pytest.mark.parametrize(
    "params", [{"format": "shp"}, {"filter": "nonsense = 1"}, {"colour": "red"}]
)
def test_bad_requests_are_400(client, params):
    assert client.get("/api/export/libraries", params=params).status_code == 400


def test_empty_selection(client):
    response = client.get(
        "/api/export/libraries", params={"format": "geojson", "filter": "name = 'none'"}
    )
    assert response.status_code == 200 and response.json()["features"] == []
