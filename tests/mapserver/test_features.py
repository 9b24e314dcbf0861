"""Items queries: every parameter against SQL, and bad input answered with 400."""

import pytest

from .test_ogc import all_items

EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"


def count(client, collection, **params) -> int:
    return len(all_items(client, collection, **params))


@pytest.mark.parametrize(
    ("collection", "cql", "sql"),
    [
        ("pharmacies", "name LIKE 'Boots%'", "name LIKE 'Boots%'"),
        ("pharmacies", "CASEI(name) LIKE CASEI('boots%')", "lower(name) LIKE 'boots%'"),
        ("polling_stations", "ward_name IN ('Bramhall North','Marple North')",
         "ward_name IN ('Bramhall North','Marple North')"),
        ("polling_stations", "station_id BETWEEN 11000 AND 11300",
         "station_id BETWEEN 11000 AND 11300"),
        ("polling_stations", "NOT (ward_name = 'Bramhall North' OR ward_name = 'Heald Green')",
         "NOT (ward_name = 'Bramhall North' OR ward_name = 'Heald Green')"),
        ("watercourses", "length_m > 2000 AND form = 'inland river'",
         "length_m > 2000 AND form = 'inland river'"),
        ("libraries", "postcode IS NULL", "postcode IS NULL"),
        ("greenspace_access_points",
         "S_INTERSECTS(geom, POLYGON((-2.2 53.38, -2.1 53.38, -2.1 53.42, -2.2 53.42, "
         "-2.2 53.38)))",
         "ST_Intersects(geom, ST_Transform(ST_GeomFromText("
         "'POLYGON((-2.2 53.38, -2.1 53.38, -2.1 53.42, -2.2 53.42, -2.2 53.38))', 4326), 27700))"),
        ("polling_stations", "S_WITHIN(geom, BBOX(-2.2, 53.38, -2.1, 53.42))",
         "ST_Within(geom, ST_Transform(ST_Segmentize("
         "ST_MakeEnvelope(-2.2, 53.38, -2.1, 53.42, 4326), 0.001), 27700))"),
        ("pharmacies", "S_DWITHIN(geom, POINT(-2.1575 53.4084), 1000)",
         "ST_DWithin(geom, ST_Transform(ST_SetSRID(ST_MakePoint(-2.1575, 53.4084), 4326), 27700),"
         " 1000)"),
        ("planning_applications", "T_AFTER(received_date, DATE('2025-06-01'))",
         "received_date > '2025-06-01'"),
        ("planning_applications",
         "T_DURING(received_date, INTERVAL('2024-01-01', '2024-03-31'))",
         "received_date > '2024-01-01' AND received_date < '2024-03-31'"),
        ("planning_applications", "status = 'Pending' AND application_type <> 'Householder'",
         "status = 'Pending' AND application_type <> 'Householder'"),
    ],
)  # fmt: skip
def test_cql2_filter_matches_sql(client, scalar, collection, cql, sql):
    expected = scalar(f"SELECT count(*) FROM layers.{collection} WHERE {sql}")
    assert count(client, collection, filter=cql) == expected


def test_cql2_json_filter(client, scalar):
    cql = '{"op": "=", "args": [{"property": "ward_name"}, "Bramhall North"]}'
    expected = scalar(
        "SELECT count(*) FROM layers.polling_stations WHERE ward_name = 'Bramhall North'"
    )
    assert count(client, "polling_stations", filter=cql, **{"filter-lang": "cql2-json"}) == expected


def test_datetime_interval(client, scalar):
    expected = scalar(
        "SELECT count(*) FROM layers.planning_applications"
        " WHERE received_date BETWEEN '2024-02-01' AND '2024-02-29'"
    )
    assert (
        count(client, "planning_applications", datetime="2024-02-01T00:00:00Z/2024-02-29T00:00:00Z")
        == expected
    )
    assert count(client, "planning_applications", datetime="../2023-12-31") == scalar(
        "SELECT count(*) FROM layers.planning_applications WHERE received_date <= '2023-12-31'"
    )


def test_sortby_and_properties(client, scalar):
    body = client.get(
        "/ogc/collections/pharmacies/items",
        params={"sortby": "-name", "properties": "name,postcode", "limit": 5},
    ).json()
    names = [f["properties"]["name"] for f in body["features"]]
    assert names == sorted(names, reverse=True)
    assert names[0] == scalar("SELECT max(name) FROM layers.pharmacies")
    assert all(set(f["properties"]) == {"name", "postcode"} for f in body["features"])


def test_skip_geometry(client):
    body = client.get("/ogc/collections/libraries/items", params={"skipGeometry": "true"}).json()
    assert all(f["geometry"] is None for f in body["features"])


def test_epsg4326_output_is_latitude_first(client):
    crs84 = client.get("/ogc/collections/libraries/items/1").json()["geometry"]["coordinates"]
    response = client.get("/ogc/collections/libraries/items/1", params={"crs": EPSG4326})
    assert response.headers["Content-Crs"] == f"<{EPSG4326}>"
    assert response.json()["geometry"]["coordinates"] == [crs84[1], crs84[0]]


def test_bbox_in_epsg4326_is_latitude_first(client):
    crs84 = count(client, "greenspace_access_points", bbox="-2.2,53.38,-2.1,53.42")
    lat_lon = count(
        client, "greenspace_access_points", bbox="53.38,-2.2,53.42,-2.1", **{"bbox-crs": EPSG4326}
    )
    assert crs84 == lat_lon > 0


def test_large_layers_skip_the_count(client):
    body = client.get("/ogc/collections/land_ownership/items", params={"limit": 2}).json()
    assert "numberMatched" not in body and body["numberReturned"] == 2
    hits = client.get("/ogc/collections/land_ownership/items", params={"resulttype": "hits"}).json()
    assert hits["numberMatched"] > 100_000 and hits["features"] == []


def test_next_link_only_when_more(client, scalar):
    total = scalar("SELECT count(*) FROM layers.libraries")
    body = client.get("/ogc/collections/libraries/items", params={"limit": total}).json()
    assert "next" not in {link["rel"] for link in body["links"]}
    body = client.get("/ogc/collections/libraries/items", params={"limit": total - 1}).json()
    assert "next" in {link["rel"] for link in body["links"]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"colour": "red"}, "unknown query parameter colour"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"offset": "-1"}, "offset"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "-2.1,53.4,-2.2,nan"}, "bbox"),
        ({"bbox": "-2.1,53.5,-2.2,53.4"}, "lower corner"),
        ({"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/27700"}, "without bbox"),
        ({"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "not offered"),
        ({"filter": "name = "}, "not valid cql2-text"),
        ({"filter": "nonsense_field = 1"}, "unknown property 'nonsense_field'"),
        ({"filter": "name = 'a'", "filter-lang": "sql"}, "filter-lang"),
        ({"filter": "S_DWITHIN(geom, POINT(0 0), -5)"}, "distance"),
        ({"datetime": "2024-01-01T00:00:00Z"}, "no time field"),
        ({"sortby": "colour"}, "sortby"),
        ({"properties": "colour"}, "properties"),
        ({"skipGeometry": "maybe"}, "skipGeometry"),
        ({"f": "xml"}, "not a format"),
        ({"name": "x", "f": "json", "limit": "1", "Limit": "2"}, "unknown query parameter Limit"),
    ],
)
def test_bad_parameters_are_400(client, params, message):
    response = client.get("/ogc/collections/libraries/items", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidParameterValue"
    assert message in body["description"]


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "2024-02-01/2024-01-01", "../..x"])
def test_bad_datetime_is_400(client, value):
    response = client.get(
        "/ogc/collections/planning_applications/items", params={"datetime": value}
    )
    assert response.status_code == 400, (value, response.text)
    assert response.json()["description"].startswith("datetime")


def test_hostile_strings_are_data_not_sql(client, scalar):
    before = scalar("SELECT count(*) FROM layers.libraries")
    for value in ["'; DROP TABLE layers.libraries; --", "\\x00", "<script>alert(1)</script>"]:
        response = client.get("/ogc/collections/libraries/items", params={"name": value})
        assert response.status_code == 200 and response.json()["numberReturned"] == 0
        response = client.get(
            "/ogc/collections/libraries/items", params={"filter": f"name = '{value}'"}
        )
        assert response.status_code in (200, 400)
    assert scalar("SELECT count(*) FROM layers.libraries") == before


def test_type_mismatch_in_filter_is_400(client):
    response = client.get(
        "/ogc/collections/polling_stations/items", params={"filter": "station_id = 'abc'"}
    )
    assert response.status_code == 400
    assert (
        client.get(
            "/ogc/collections/polling_stations/items", params={"station_id": "abc"}
        ).status_code
        == 400
    )


def test_unknown_item_is_404(client):
    assert client.get("/ogc/collections/libraries/items/999999").status_code == 404
    assert client.get("/ogc/collections/libraries/items/abc").status_code == 404
