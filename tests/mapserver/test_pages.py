"""HTML pages over HTTP (the browser tests drive them in chromium)."""

from mapserver.access import create_key


def test_connect_page_lists_what_the_caller_may_read(client, base_url, engine):
    page = client.get("/connect").text
    assert f"{base_url}/ogc/collections/libraries/items" in page
    assert "hospitals" not in page and "road_casualties" not in page
    key = create_key(engine, "connect test", "emergency")[1]
    page = client.get("/connect", headers={"X-API-Key": key}).text
    assert f"{base_url}/ogc/collections/hospitals/items" in page
    assert "road_casualties" not in page


def test_pages_escape_what_they_show(client):
    page = client.get("/login", params={"next": '"><script>alert(1)</script>'}).text
    assert "<script>alert(1)</script>" not in page


def test_api_docs_need_no_internet(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    for asset in ("/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css"):
        assert asset in page.text and client.get(asset).status_code == 200
