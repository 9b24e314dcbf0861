"""The OGC API at /ogc, queried over HTTP; every count checked against SQL."""

import pytest

EPSG27700 = "http://www.opengis.net/def/crs/EPSG/0/27700"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def all_items(client, collection: str, **params) -> list[dict]:
    """Every feature of a query, following the server's next links."""
    features: list[dict] = []
    url = f"/ogc/collections/{collection}/items"
    query = {"f": "json", "limit": 50, **params}
    while url:
        page = client.get(url, params=query).json()
        features += page["features"]
        nxt = [link["href"] for link in page.get("links", []) if link["rel"] == "next"]
        url, query = (nxt[0], None) if nxt and page["features"] else (None, None)
    return features


def test_landing_page_links_include_the_mount(client, base_url):
    landing = client.get("/ogc", params={"f": "json"})
    assert landing.status_code == 200
    links = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert links["self"].startswith(f"{base_url}/ogc?")
    assert links["data"] == f"{base_url}/ogc/collections"
    assert links["conformance"] == f"{base_url}/ogc/conformance"


def test_every_public_layer_is_a_collection(client, runtime):
    collections = client.get("/ogc/collections", params={"f": "json"}).json()["collections"]
    ids = {c["id"] for c in collections}
    assert ids == {layer.id for layer in runtime.catalogue.public_layers}
    libraries = next(c for c in collections if c["id"] == "libraries")
    assert EPSG27700 in libraries["crs"] and CRS84 in libraries["crs"]
    assert libraries["storageCrs"] == EPSG27700


@pytest.mark.parametrize(
    "collection", ["libraries", "polling_stations", "greenspace_access_points"]
)
def test_limit_and_number_matched(client, scalar, collection):
    body = client.get(f"/ogc/collections/{collection}/items", params={"limit": 7}).json()
    assert len(body["features"]) == 7
    assert body["numberMatched"] == scalar(f"SELECT count(*) FROM layers.{collection}")


def test_paging_with_offset_returns_every_feature_once(client, scalar):
    features = all_items(client, "polling_stations")
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == scalar("SELECT count(*) FROM layers.polling_stations")


def test_offset_past_the_end_is_empty(client, scalar):
    total = scalar("SELECT count(*) FROM layers.pharmacies")
    body = client.get(
        "/ogc/collections/pharmacies/items", params={"limit": 10, "offset": total - 4}
    ).json()
    assert len(body["features"]) == 4


def test_bbox_in_crs84(client, scalar):
    bbox = (-2.20, 53.38, -2.10, 53.42)
    features = all_items(client, "greenspace_access_points", bbox=",".join(map(str, bbox)))
    expected = scalar(
        "SELECT count(*) FROM layers.greenspace_access_points"
        " WHERE ST_Intersects(ST_Transform(geom, 4326), ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=bbox[0],
        b=bbox[1],
        c=bbox[2],
        d=bbox[3],
    )
    assert expected > 50
    assert len(features) == expected


def test_bbox_in_british_national_grid(client, scalar):
    bbox = (386000, 387000, 392000, 391000)
    features = all_items(
        client, "greenspace_access_points", bbox=",".join(map(str, bbox)), **{"bbox-crs": EPSG27700}
    )
    expected = scalar(
        "SELECT count(*) FROM layers.greenspace_access_points"
        " WHERE geom && ST_MakeEnvelope(:a, :b, :c, :d, 27700)",
        a=bbox[0],
        b=bbox[1],
        c=bbox[2],
        d=bbox[3],
    )
    assert expected > 50
    assert len(features) == expected


def test_output_in_british_national_grid(client, scalar):
    response = client.get("/ogc/collections/libraries/items", params={"limit": 1, "crs": EPSG27700})
    assert response.headers["Content-Crs"] == f"<{EPSG27700}>"
    feature = response.json()["features"][0]
    x, y = feature["geometry"]["coordinates"]
    assert scalar(
        "SELECT ST_X(geom)::numeric(12,2) = :x AND ST_Y(geom)::numeric(12,2) = :y"
        " FROM layers.libraries WHERE fid = :fid",
        x=round(x, 2),
        y=round(y, 2),
        fid=feature["id"],
    )


def test_property_filter(client, scalar):
    ward = "Bramhall North"
    features = all_items(client, "polling_stations", ward_name=ward)
    expected = scalar("SELECT count(*) FROM layers.polling_stations WHERE ward_name = :w", w=ward)
    assert expected > 0
    assert len(features) == expected
    assert {f["properties"]["ward_name"] for f in features} == {ward}


def test_single_item(client, scalar):
    feature = client.get("/ogc/collections/libraries/items/3", params={"f": "json"}).json()
    assert feature["properties"]["name"] == scalar(
        "SELECT name FROM layers.libraries WHERE fid = 3"
    )


def test_unknown_collection_is_404(client):
    assert client.get("/ogc/collections/nope/items").status_code == 404


def test_collections_link_their_tiles_and_conformance_says_so(client, base_url):
    collection = client.get("/ogc/collections/libraries", params={"f": "json"}).json()
    tiles = [link for link in collection["links"] if link["rel"].endswith("tilesets-vector")]
    assert tiles and tiles[0]["href"] == f"{base_url}/ogc/collections/libraries/tiles"
    conformance = client.get("/ogc/conformance", params={"f": "json"}).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conformance


@pytest.mark.parametrize(
    "path",
    [
        "/ogc",
        "/ogc/",
        "/ogc/conformance",
        "/ogc/openapi",
        "/ogc/collections",
        "/ogc/collections/libraries",
        "/ogc/collections/libraries/schema",
        "/ogc/collections/libraries/queryables",
        "/ogc/processes",
        "/ogc/processes/features-near-location",
        "/ogc/jobs/no-such-job",
        "/ogc/jobs/no-such-job/results",
        "/ogc/tileMatrixSets",
        "/ogc/collections/libraries/tiles",
        "/ogc/collections/libraries/tiles/WebMercatorQuad",
    ],
)
def test_unknown_query_parameters_are_400_everywhere(client, path):
    """/req/core/query-param-unknown, on pygeoapi's own paths as on ours."""
    assert client.get(path, params={"f": "json", "lang": "en-GB"}).status_code in (200, 404)
    response = client.get(path, params={"f": "json", "x": "1"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidParameterValue" and "x" in body["description"]


def test_unknown_query_parameters_of_a_tile_are_400(client):
    response = client.get("/ogc/collections/libraries/tiles/WebMercatorQuad/0/0/0?v=2")
    assert response.status_code == 400 and response.json()["code"] == "InvalidParameterValue"


def test_documented_parameters_of_pygeoapi_paths_are_taken(client):
    assert client.get("/ogc/processes", params={"limit": 1, "f": "json"}).status_code == 200
    assert client.get("/ogc/openapi", params={"ui": "redoc"}).status_code == 200
