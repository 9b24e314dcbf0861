"""The repository's nginx config, checked by Debian's nginx (`nginx -t`) and then run in
front of the real app: tiles cached as the app's headers say, never for a caller with a
key, static files cached, responses gzipped."""

import subprocess

import httpx
import pytest

from mapserver.access import create_key
from tests.cluster.harness import Nginx, nginx_test, render_nginx

TILE = "/ogc/collections/streetlights/tiles/WebMercatorQuad/15/10612/16187"


@pytest.mark.parametrize("site", ["http", "https"])
def test_nginx_accepts_the_config(tmp_path, site):
    if site == "https":
        (tmp_path / "certs").mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=maps.example.gov.uk",
             "-keyout", str(tmp_path / "certs" / "privkey.pem"),
             "-out", str(tmp_path / "certs" / "fullchain.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
    config = render_nginx(tmp_path, 8080, ["127.0.0.1:8001", "127.0.0.1:8002"], site)
    result = nginx_test(config)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture(scope="module")
def proxy(base_url, tmp_path_factory):
    nginx = Nginx(tmp_path_factory.mktemp("nginx"), [base_url.removeprefix("http://")])
    yield nginx.url
    nginx.stop()


def test_public_tiles_are_cached_and_revalidated(proxy):
    with httpx.Client(base_url=proxy, timeout=30) as http:
        first = http.get(TILE)
        assert first.status_code == 200, first.text
        assert first.headers["x-cache-status"] in ("MISS", "HIT")
        again = http.get(TILE)
        assert again.headers["x-cache-status"] == "HIT"
        assert again.content == first.content
        etag = first.headers["etag"]
        assert http.get(TILE, headers={"If-None-Match": etag}).status_code == 304


def test_a_caller_who_says_who_they_are_is_never_served_from_the_cache(proxy, engine):
    key = create_key(engine, "nginx test", "staff")[1]
    with httpx.Client(base_url=proxy, timeout=30) as http:
        http.get(TILE)
        keyed = http.get(TILE, headers={"X-API-Key": key})
        assert keyed.headers["x-cache-status"] == "BYPASS"
        assert keyed.headers["cache-control"].startswith("private")
        session = http.get(TILE, headers={"Cookie": "msid=whatever"})
        assert session.headers["x-cache-status"] == "BYPASS"


def test_static_files_are_cached(proxy):
    with httpx.Client(base_url=proxy, timeout=30) as http:
        http.get("/static/css/app.css")
        cached = http.get("/static/css/app.css")
        assert cached.status_code == 200
        assert cached.headers["x-cache-status"] == "HIT"
        assert cached.headers["cache-control"] == "max-age=3600"
        vendor = http.get("/vendor/leaflet/leaflet.js")
        assert vendor.status_code == 200 and "x-cache-status" in vendor.headers


def test_responses_are_gzipped(proxy):
    response = httpx.get(
        f"{proxy}/ogc/collections/libraries/items?limit=50",
        headers={"Accept-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["type"] == "FeatureCollection"  # httpx decoded it
