"""`mapserver refresh` reloads a layer only when its source changed."""

import dataclasses
import shutil
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from layers.model import Source
from loaders.refresh import refresh
from loaders.samples import source_path


@pytest.fixture
def watched(runtime, tmp_path):
    """The catalogue with the libraries read from a file the test can change."""
    layer = runtime.catalogue.layer("libraries")
    path = tmp_path / "libraries.geojson"
    shutil.copy(source_path(layer.source.path), path)
    changed = layer.model_copy(update={"source": Source(path=str(path)), "refresh": "daily"})
    catalogue = dataclasses.replace(
        runtime.catalogue, layers={**runtime.catalogue.layers, "libraries": changed}
    )
    yield catalogue, path
    # Leave the layer as the other tests expect it (same rows, a new version).
    shutil.copy(source_path(layer.source.path), path)
    refresh(runtime.engine, catalogue, ["libraries"], reports_dir=tmp_path)


def states(outcomes) -> list[str]:
    return [o.state for o in outcomes]


def test_refresh_reloads_only_changed_sources(runtime, watched, scalar, tmp_path):
    catalogue, path = watched
    assert states(refresh(runtime.engine, catalogue, ["libraries"], reports_dir=tmp_path)) == [
        "unchanged"
    ]
    path.write_text(path.read_text().replace("Bramhall Library", "Bramhall Library (new)"))
    before = scalar("SELECT max(version) FROM app.layer_versions WHERE layer = 'libraries'")
    outcome = refresh(runtime.engine, catalogue, ["libraries"], reports_dir=tmp_path)[0]
    assert outcome.state == "loaded" and outcome.result.version == before + 1
    assert scalar("SELECT count(*) FROM layers.libraries WHERE name LIKE '%(new)'") == 1
    # Scheduled refresh: checked just now, so not due again today...
    assert "libraries" not in [
        o.layer for o in refresh(runtime.engine, catalogue, None, reports_dir=tmp_path)
        if o.state != "not due"
    ]  # fmt: skip
    # ...but due tomorrow, when it finds nothing new.
    tomorrow = datetime.now(UTC) + timedelta(days=1, minutes=1)
    outcomes = refresh(runtime.engine, catalogue, None, reports_dir=tmp_path, now=tomorrow)
    assert [o.state for o in outcomes if o.layer == "libraries"] == ["unchanged"]


class _ETagHandler(BaseHTTPRequestHandler):
    body = b""
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.headers.get("If-None-Match") or "")
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_refresh_from_a_url_uses_the_etag(runtime, scalar, tmp_path):
    layer = runtime.catalogue.layer("libraries")
    _ETagHandler.body = source_path(layer.source.path).read_bytes().replace(b"Marple", b"Marple!")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ETagHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/libraries.geojson"
    remote = layer.model_copy(update={"source": Source(url=url), "refresh": "hourly"})
    catalogue = dataclasses.replace(
        runtime.catalogue, layers={**runtime.catalogue.layers, "libraries": remote}
    )
    try:
        first = refresh(runtime.engine, catalogue, ["libraries"], reports_dir=tmp_path)[0]
        assert first.state == "loaded"
        assert scalar("SELECT count(*) FROM layers.libraries WHERE name LIKE '%Marple!%'") == 1
        second = refresh(runtime.engine, catalogue, ["libraries"], reports_dir=tmp_path)[0]
        assert second.state == "unchanged"
        assert _ETagHandler.requests[-1] == '"v1"'
        assert (
            scalar(
                "SELECT source_uri FROM app.layer_versions WHERE layer = 'libraries'"
                " AND status = 'live'"
            )
            == url
        )
    finally:
        server.shutdown()
        local = layer.model_copy(update={"refresh": None})
        refresh(
            runtime.engine,
            dataclasses.replace(catalogue, layers={**catalogue.layers, "libraries": local}),
            ["libraries"], reports_dir=tmp_path,
        )  # fmt: skip
