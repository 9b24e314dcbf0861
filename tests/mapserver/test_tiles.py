"""OGC API – Tiles at /ogc over HTTP: tiles decoded and checked against SQL."""

import time

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from loaders.pipeline import load_layer, rollback_layer
from loaders.samples import source_path
from mapserver.access import create_key
from mapserver.tiles import MVT, VERSION_TTL_S, tile_links

WMQ = "WebMercatorQuad"
BNG = "OSGB36BritishNationalGrid"
WEB_MERCATOR = morecantile.tms.get(WMQ)
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
# Ordnance Survey's ZXY grid on British National Grid, written out independently here.
BNG_ORIGIN = (-238375.0, 1376256.0)
BNG_RESOLUTION_0 = 896.0
HALF_WORLD = 20037508.342789244  # WebMercatorQuad's half width, metres
PUBLIC_LAND_FIELDS = {"inspire_id", "title_number", "tenure", "proprietor_category"}


def tile_path(collection: str, z: int, y: int, x: int, tms: str = WMQ) -> str:
    return f"/ogc/collections/{collection}/tiles/{tms}/{z}/{y}/{x}"


def decode(content: bytes) -> dict:
    """The tile's layers, coordinates as stored (0-4096, y down)."""
    return mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})


def features(client, path: str, **headers) -> list[dict]:
    response = client.get(path, headers=headers)
    assert response.status_code in (200, 204), response.text
    return [f for layer in decode(response.content).values() for f in layer["features"]]


def busiest_tile(engine, layer: str, z: int) -> morecantile.Tile:
    """The WebMercatorQuad tile at ``z`` holding most of ``layer``'s features."""
    with engine.connect() as conn:
        x, y = conn.execute(
            text(
                "SELECT floor((ST_X(p) + :half) / :span), floor((:half - ST_Y(p)) / :span)"
                " FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 3857) AS p"
                f" FROM layers.{layer}) s GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1"
            ),
            {"half": HALF_WORLD, "span": 2 * HALF_WORLD / 2**z},
        ).one()
    return morecantile.Tile(int(x), int(y), z)


def ids_in_tile(engine, layer: str, tile: morecantile.Tile) -> set[int]:
    """What SQL says is in the tile (grown by the 64/4096 buffer the tiles carry)."""
    envelope = "ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096)"
    with engine.connect() as conn:
        return {
            row[0]
            for row in conn.execute(
                text(
                    f"SELECT fid FROM layers.{layer} WHERE geom && ST_Transform(ST_Segmentize("
                    f"{envelope}, (ST_XMax({envelope}) - ST_XMin({envelope})) / 16), 27700)"
                    f" AND ST_Intersects(ST_Transform(geom, 3857), {envelope})"
                ),
                {"z": tile.z, "x": tile.x, "y": tile.y},
            )
        }


@pytest.fixture(scope="module")
def staff_key(engine) -> str:
    return create_key(engine, "tiles test", "staff")[1]


def test_tile_matrix_sets(client, base_url):
    body = client.get("/ogc/tileMatrixSets").json()
    offered = {tms["id"]: tms for tms in body["tileMatrixSets"]}
    assert set(offered) == {WMQ, BNG}
    assert offered[WMQ]["uri"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    for tms_id, summary in offered.items():
        (self_link,) = [link for link in summary["links"] if link["rel"] == "self"]
        assert self_link["href"] == f"{base_url}/ogc/tileMatrixSets/{tms_id}"
        document = client.get(self_link["href"]).json()
        assert document["id"] == tms_id
    bng = client.get(f"/ogc/tileMatrixSets/{BNG}").json()
    assert bng["crs"] == "http://www.opengis.net/def/crs/EPSG/0/27700"
    levels = {int(m["id"]): m for m in bng["tileMatrices"]}
    assert sorted(levels) == list(range(14))
    assert levels[0]["pointOfOrigin"] == list(BNG_ORIGIN)
    assert (levels[0]["cellSize"], levels[0]["matrixWidth"], levels[0]["matrixHeight"]) == (
        896,
        5,
        6,
    )
    assert levels[13]["cellSize"] == 0.109375 and levels[13]["tileWidth"] == 256
    # pygeoapi's landing page links to /TileMatrixSets: the same document answers there.
    assert client.get("/ogc/TileMatrixSets").json() == body
    assert client.get("/ogc/tileMatrixSets/Nope").status_code == 404


def test_tilesets_and_tileset_documents(client, base_url, runtime):
    collection = f"{base_url}/ogc/collections/libraries"
    body = client.get("/ogc/collections/libraries/tiles", params={"f": "json"}).json()
    assert {link["rel"] for link in body["links"]} >= {"self"}
    assert len(body["tilesets"]) == 2
    for tileset in body["tilesets"]:
        assert tileset["dataType"] == "vector"
        links = {link["rel"]: link for link in tileset["links"]}
        assert links["item"]["templated"] is True and links["item"]["type"] == MVT
        assert links["item"]["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
        assert client.get(links[TILING_SCHEME]["href"]).status_code == 200
        document = client.get(links["self"]["href"]).json()
        tms_id = links["self"]["href"].rsplit("/", 1)[1]
        assert document["tiles"] == [f"{collection}/tiles/{tms_id}/{{z}}/{{y}}/{{x}}"]
        fields = runtime.catalogue.layers["libraries"].public_fields
        assert document["vector_layers"][0]["fields"] == {f.name: f.label for f in fields}
        assert document["layers"][0]["id"] == "libraries"
        assert set(document["layers"][0]["propertiesSchema"]["properties"]) == {
            f.name for f in fields
        }


def test_tile_links_point_at_the_tilesets(client, base_url):
    (link,) = tile_links(base_url, "libraries")
    assert link["rel"] == TILESETS_VECTOR
    assert client.get(link["href"]).json()["tilesets"]


@pytest.mark.parametrize(
    ("layer", "z"), [("pharmacies", 14), ("pharmacies", 16), ("libraries", 14)]
)
def test_tile_holds_exactly_the_features_sql_finds(client, engine, scalar, layer, z):
    tile = busiest_tile(engine, layer, z)
    expected = ids_in_tile(engine, layer, tile)
    assert len(expected) >= 2
    found = features(client, tile_path(layer, tile.z, tile.y, tile.x))
    assert sorted(f["id"] for f in found) == sorted(expected)
    # Each point where PostGIS puts it (the tile may reproject by a fitted affine map).
    for feature in found:
        x, y = feature["geometry"]["coordinates"]
        exact = scalar(
            f"SELECT ST_AsText(ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y),"
            f" 4096, 64, true)) FROM layers.{layer} WHERE fid = :fid",
            z=tile.z, x=tile.x, y=tile.y, fid=feature["id"],
        )  # fmt: skip
        ex, ey = (float(v) for v in exact.removeprefix("POINT(").rstrip(")").split())
        assert abs(x - ex) <= 1 and abs(y - ey) <= 1


def test_tile_attributes_are_the_public_fields(client, engine, scalar, runtime):
    tile = busiest_tile(engine, "pharmacies", 14)
    found = features(client, tile_path("pharmacies", tile.z, tile.y, tile.x))
    public = {f.name for f in runtime.catalogue.layers["pharmacies"].public_fields}
    assert set().union(*(f["properties"] for f in found)) == public


def test_restricted_field_only_for_staff(client, engine, staff_key):
    tile = busiest_tile(engine, "pharmacies", 16)  # in town: land parcels there too
    path = tile_path("land_ownership", tile.z, tile.y, tile.x)
    anonymous = client.get(path)
    parcels = [f for layer in decode(anonymous.content).values() for f in layer["features"]]
    assert parcels and {k for f in parcels for k in f["properties"]} == PUBLIC_LAND_FIELDS
    assert anonymous.headers["cache-control"].startswith("public")

    staff = client.get(path, headers={"X-API-Key": staff_key})
    parcels = [f for layer in decode(staff.content).values() for f in layer["features"]]
    assert {k for f in parcels for k in f["properties"]} == PUBLIC_LAND_FIELDS | {"proprietor_name"}
    assert staff.headers["cache-control"].startswith("private")
    assert staff.headers["etag"] != anonymous.headers["etag"]

    tileset = "/ogc/collections/land_ownership/tiles/WebMercatorQuad"
    assert "proprietor_name" not in client.get(tileset).json()["vector_layers"][0]["fields"]
    staff_fields = client.get(tileset, headers={"X-API-Key": staff_key}).json()
    assert "proprietor_name" in staff_fields["vector_layers"][0]["fields"]


def test_restricted_collection_is_404_like_an_unknown_one(client, runtime, staff_key):
    layers = runtime.catalogue.layers
    layers["staff_libraries"] = layers["libraries"].model_copy(
        update={"id": "staff_libraries", "table": "libraries", "access": "staff"}
    )
    try:
        for path in ("tiles", "tiles/WebMercatorQuad", "tiles/WebMercatorQuad/14/5306/8093"):
            hidden = client.get(f"/ogc/collections/staff_libraries/{path}")
            unknown = client.get(f"/ogc/collections/no_such_layer/{path}")
            assert hidden.status_code == unknown.status_code == 404
            assert hidden.json() == unknown.json()
            assert hidden.json()["code"] == "NotFound"
        shown = client.get(
            "/ogc/collections/staff_libraries/tiles", headers={"X-API-Key": staff_key}
        )
        assert shown.status_code == 200
    finally:
        del layers["staff_libraries"]


def test_etag_304_and_reload(client, engine, scalar, runtime, tmp_path):
    tile = busiest_tile(engine, "pharmacies", 16)
    path = tile_path("pharmacies", tile.z, tile.y, tile.x)
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["content-type"] == MVT
    assert first.headers["cache-control"] == "public, max-age=60"
    etag = first.headers["etag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200

    layer = runtime.catalogue.layers["pharmacies"]
    load_layer(
        engine, layer, source_path(layer.source.path), reports_dir=tmp_path, run_by="tiles test",
        catalogue=runtime.catalogue,
    )  # fmt: skip
    deadline = time.monotonic() + VERSION_TTL_S + 3
    while (reloaded := client.get(path, headers={"If-None-Match": etag})).status_code == 304:
        assert time.monotonic() < deadline, "the ETag did not change after the reload"
        time.sleep(0.2)
    assert reloaded.status_code == 200 and reloaded.headers["etag"] != etag
    assert 'desc="miss"' in reloaded.headers["server-timing"]  # not the old version's tile

    rollback_layer(engine, layer, runtime.catalogue)  # the first version is live again
    deadline = time.monotonic() + VERSION_TTL_S + 3
    while (back := client.get(path)).headers["etag"] != etag:
        assert time.monotonic() < deadline, "the ETag did not come back after the rollback"
        time.sleep(0.2)
    assert back.content == first.content


def test_tiles_are_served_from_the_cache(client, engine, staff_key):
    tile = busiest_tile(engine, "pharmacies", 15)
    path = tile_path("land_ownership", tile.z, tile.y, tile.x)
    first, again = client.get(path), client.get(path)
    assert 'desc="miss"' in first.headers["server-timing"]
    assert 'desc="hit"' in again.headers["server-timing"]
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    # What the caller may see is part of the key: staff get their own tile, not this one.
    staff = client.get(path, headers={"X-API-Key": staff_key})
    assert 'desc="miss"' in staff.headers["server-timing"]
    assert staff.content != first.content


@pytest.mark.parametrize(
    "path",
    [
        tile_path("libraries", 25, 0, 0),
        tile_path("libraries", 14, 0, 2**14),
        tile_path("libraries", 2, 4, 0),
        tile_path("libraries", -1, 0, 0),
        tile_path("libraries", 14, 0, 0, BNG),
        tile_path("libraries", 0, 0, 5, BNG),
        tile_path("libraries", 14, 5306, 8093, "Nope"),
        tile_path("no_such_layer", 14, 5306, 8093),
    ],
)
def test_outside_the_matrix_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"


@pytest.mark.parametrize("z", ["abc", "1.5", "1e3", "%20"])
def test_non_integer_tile_matrix_is_400(client, z):
    response = client.get(f"/ogc/collections/libraries/tiles/WebMercatorQuad/{z}/0/0")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameterValue"


def test_formats(client):
    path = tile_path("libraries", 0, 0, 0)
    assert client.get(path, params={"f": "json"}).status_code == 400
    assert client.get(path, headers={"Accept": "text/html"}).status_code == 406
    assert client.get(path, params={"f": "mvt"}).status_code == 200
    assert client.get("/ogc/collections/libraries/tiles", params={"f": "html"}).status_code == 400


def test_empty_tile_is_204_with_an_etag(client):
    response = client.get(tile_path("libraries", 10, 300, 300))  # the Atlantic
    assert response.status_code == 204 and response.content == b""
    assert response.headers["etag"]


def test_british_national_grid_tiles_line_up(client, engine, scalar):
    fid = scalar("SELECT min(fid) FROM layers.libraries")
    x = scalar("SELECT ST_X(geom) FROM layers.libraries WHERE fid = :f", f=fid)
    y = scalar("SELECT ST_Y(geom) FROM layers.libraries WHERE fid = :f", f=fid)
    for z in (6, 10, 13):
        span = 256 * BNG_RESOLUTION_0 / 2**z
        col, row = int((x - BNG_ORIGIN[0]) // span), int((BNG_ORIGIN[1] - y) // span)
        found = features(client, tile_path("libraries", z, row, col, BNG))
        (library,) = [f for f in found if f["id"] == fid]
        left, top = BNG_ORIGIN[0] + col * span, BNG_ORIGIN[1] - row * span
        tx, ty = library["geometry"]["coordinates"]
        assert abs(tx - (x - left) / span * 4096) <= 0.5
        assert abs(ty - (top - y) / span * 4096) <= 0.5


def test_dense_points_are_thinned_at_low_zoom(client, engine, scalar):
    tile = busiest_tile(engine, "streetlights", 12)
    in_sql = len(ids_in_tile(engine, "streetlights", tile))
    drawn = features(client, tile_path("streetlights", tile.z, tile.y, tile.x))
    assert 0 < len(drawn) < in_sql


def test_polygons_under_a_pixel_are_left_out_at_low_zoom(client, engine, scalar):
    tile = busiest_tile(engine, "pharmacies", 10)  # a pixel is ~90 m, a parcel ~30 m
    in_sql = scalar(
        "SELECT count(*) FROM layers.land_ownership"
        " WHERE geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 27700)",
        z=tile.z, x=tile.x, y=tile.y,
    )  # fmt: skip
    drawn = features(client, tile_path("land_ownership", tile.z, tile.y, tile.x))
    assert 0 < len(drawn) < in_sql / 2


def test_filter_draws_only_the_matching_features(client, engine, scalar, staff_key):
    tile = busiest_tile(engine, "planning_applications", 14)
    path = tile_path("planning_applications", tile.z, tile.y, tile.x)
    every = client.get(path)
    refused = client.get(path, params={"filter": "status = 'Refused'"})
    assert refused.status_code == 200
    drawn = features(client, f"{path}?filter=status%20%3D%20%27Refused%27")
    all_ids = {f["id"] for f in features(client, path)}
    expected = {
        fid
        for fid in ids_in_tile(engine, "planning_applications", tile)
        if scalar("SELECT status FROM layers.planning_applications WHERE fid = :f", f=fid)
        == "Refused"
    }
    assert drawn and {f["id"] for f in drawn} == expected < all_ids
    assert {f["properties"]["status"] for f in drawn} == {"Refused"}
    assert refused.headers["etag"] != every.headers["etag"]

    dated = {"filter": "received_date >= DATE('2024-01-01') AND status IN ('Refused', 'Pending')"}
    for feature in features(client, f"{path}?{httpx.QueryParams(dated)}"):
        assert feature["properties"]["received_date"] >= "2024-01-01"
        assert feature["properties"]["status"] in ("Refused", "Pending")

    # Bad or forbidden filters: 400 with a reason, as for items.
    for bad in ("status = ", "nope = 1"):
        answer = client.get(path, params={"filter": bad})
        assert answer.status_code == 400 and answer.json()["description"]
    land = busiest_tile(engine, "pharmacies", 16)
    land_path = tile_path("land_ownership", land.z, land.y, land.x)
    hidden = {"filter": "proprietor_name LIKE '%a%'"}
    assert client.get(land_path, params=hidden).status_code == 400
    assert client.get(land_path, params=hidden, headers={"X-API-Key": staff_key}).status_code in (
        200,
        204,
    )
