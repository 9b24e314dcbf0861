"""Restricted layers and fields stay invisible to anyone without the right role."""

import pytest

from mapserver.access import InvalidKey, KeyStore, create_key, revoke_key

RESTRICTED_LAYERS = ["hospitals", "fire_stations", "road_casualties"]


@pytest.fixture(scope="module")
def keys(engine):
    return {role: create_key(engine, f"test {role}", role)[1] for role in ("emergency", "staff")}


def listed(client, **headers) -> set[str]:
    response = client.get("/ogc/collections", params={"f": "json"}, headers=headers)
    assert response.status_code == 200
    return {c["id"] for c in response.json()["collections"]}


@pytest.mark.parametrize(
    "path",
    [
        "/ogc/collections/{id}",
        "/ogc/collections/{id}?f=html",
        "/ogc/collections/{id}/items",
        "/ogc/collections/{id}/items?f=html",
        "/ogc/collections/{id}/items/1",
        "/ogc/collections/{id}/queryables",
        "/ogc/collections/{id}/tiles",
    ],
)
@pytest.mark.parametrize("layer", RESTRICTED_LAYERS)
def test_anonymous_gets_404_for_restricted_layers(client, layer, path):
    response = client.get(path.format(id=layer))
    assert response.status_code == 404
    assert layer not in response.text or "not found" in response.text.lower()


def test_anonymous_listing_hides_restricted_layers(client):
    assert not set(RESTRICTED_LAYERS) & listed(client)
    assert "libraries" in listed(client)


def test_emergency_role_sees_emergency_layers_only(client, keys):
    seen = listed(client, **{"X-API-Key": keys["emergency"]})
    assert {"hospitals", "fire_stations"} <= seen
    assert "road_casualties" not in seen
    items = client.get("/ogc/collections/hospitals/items", headers={"X-API-Key": keys["emergency"]})
    assert items.status_code == 200 and items.json()["numberReturned"] > 0
    assert items.headers["Cache-Control"] == "private, no-store"
    hidden = client.get(
        "/ogc/collections/road_casualties/items", headers={"X-API-Key": keys["emergency"]}
    )
    assert hidden.status_code == 404


def test_staff_sees_everything(client, keys, scalar):
    bearer = {"Authorization": f"Bearer {keys['staff']}"}
    assert set(RESTRICTED_LAYERS) <= listed(client, **bearer)
    body = client.get(
        "/ogc/collections/road_casualties/items", params={"limit": 5}, headers=bearer
    ).json()
    assert body["numberMatched"] == scalar("SELECT count(*) FROM layers.road_casualties")
    assert {"sex", "age_band"} <= set(body["features"][0]["properties"])


def test_restricted_field_is_absent_for_anonymous(client, keys):
    layer = "land_ownership"
    anonymous = client.get(f"/ogc/collections/{layer}/items", params={"limit": 3}).json()
    assert all("proprietor_name" not in f["properties"] for f in anonymous["features"])
    queryables = client.get(f"/ogc/collections/{layer}/queryables").json()
    assert "proprietor_name" not in queryables["properties"]
    for params in (
        {"filter": "proprietor_name = 'x'"},
        {"sortby": "proprietor_name"},
        {"properties": "proprietor_name"},
        {"proprietor_name": "x"},
    ):
        response = client.get(f"/ogc/collections/{layer}/items", params=params)
        assert response.status_code == 400, params
        assert "proprietor_name" in response.json()["description"]
    html = client.get(f"/ogc/collections/{layer}/items", params={"f": "html", "limit": 3})
    assert html.status_code == 200 and "proprietor_name" not in html.text
    staff = client.get(
        f"/ogc/collections/{layer}/items",
        params={"limit": 3, "sortby": "proprietor_name"},
        headers={"X-API-Key": keys["staff"]},
    ).json()
    assert all("proprietor_name" in f["properties"] for f in staff["features"])


def test_wrong_and_revoked_keys_are_refused(client, engine):
    assert client.get("/ogc/collections", headers={"X-API-Key": "msk_nope"}).status_code == 401
    key_id, key = create_key(engine, "short-lived", "staff")
    assert client.get("/healthz", headers={"X-API-Key": key}).status_code == 200
    revoke_key(engine, key_id)
    # The app caches lookups for a few seconds; a fresh store shows the key is refused now.
    with pytest.raises(InvalidKey):
        KeyStore(engine).lookup(key)


def test_keys_are_stored_hashed(engine, keys, scalar):
    assert (
        scalar(
            "SELECT count(*) FROM app.api_keys WHERE key_hash = :k OR prefix = :k", k=keys["staff"]
        )
        == 0
    )


def test_layer_provenance_is_for_staff(client, keys, scalar):
    assert client.get("/layers/libraries").status_code == 404
    assert (
        client.get("/layers/libraries", headers={"X-API-Key": keys["emergency"]}).status_code == 404
    )
    body = client.get("/layers/libraries", headers={"X-API-Key": keys["staff"]}).json()
    assert body["layer"]["id"] == "libraries"
    live = [v for v in body["versions"] if v["status"] == "live"]
    assert len(live) == 1 and live[0]["rows_loaded"] == scalar(
        "SELECT count(*) FROM layers.libraries"
    )
    assert live[0]["source_uri"].endswith("stockport_libraries.geojson")


WRITES = [
    ("POST", "/ogc/collections/{id}/items"),
    ("PUT", "/ogc/collections/{id}/items"),
    ("DELETE", "/ogc/collections/{id}/items"),
    ("POST", "/ogc/collections/{id}/items/{fid}"),
    ("PUT", "/ogc/collections/{id}/items/{fid}"),
    ("PATCH", "/ogc/collections/{id}/items/{fid}"),
    ("DELETE", "/ogc/collections/{id}/items/{fid}"),
]


@pytest.mark.parametrize("role", [None, "emergency", "staff", "admin"])
@pytest.mark.parametrize("layer", ["libraries", "hospitals"])
def test_transactions_are_refused_for_everyone(client, engine, scalar, keys, layer, role):
    """Features Part 4 is not offered: no create, replace, update or delete, by anyone."""
    headers = {}
    if role:
        key = keys.get(role) or create_key(engine, f"test {role}", role)[1]
        headers["X-API-Key"] = key
    fid = scalar(f"SELECT min(fid) FROM layers.{layer}")
    before = scalar(f"SELECT md5(string_agg(t::text, ',' ORDER BY fid)) FROM layers.{layer} t")
    feature = {
        "type": "Feature",
        "id": fid + 1,  # pygeoapi's PUT took the id from the body
        "geometry": {"type": "Point", "coordinates": [-2.16, 53.4]},
        "properties": {"name": "Overwritten"},
    }
    readable = layer == "libraries" or role is not None
    for method, path in WRITES:
        response = client.request(
            method,
            path.format(id=layer, fid=fid),
            json=feature,
            headers={**headers, "Content-Type": "application/geo+json"},
        )
        assert response.status_code == (405 if readable else 404), (method, path, response.text)
        assert response.json()["code"] == ("MethodNotAllowed" if readable else "NotFound")
        if readable:
            assert "PUT" not in response.headers["allow"]
    after = scalar(f"SELECT md5(string_agg(t::text, ',' ORDER BY fid)) FROM layers.{layer} t")
    assert after == before
