"""Completes pygeoapi's collection documents and conformance.

pygeoapi's collection documents come from its static configuration, which holds public
layers only. This middleware adds to the JSON of ``/ogc/collections`` and
``/ogc/collections/{id}``: each layer's provenance from ``app.layer_versions`` (``updated``
in RFC 3339, ``version``, and ``synthetic: true`` for generated data; server paths of
sources are not published), and, for a principal with a role, the staff or emergency
collections that role may read.
"""

import json
import re
from typing import Any

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.catalogue import Catalogue
from loaders.pipeline import live_versions
from mapserver.access import principal
from mapserver.features import collection_document
from mapserver.settings import Settings
from mapserver.tiles import tile_links

COLLECTIONS = re.compile(r"^/ogc/collections(?:/(?P<id>[^/]+))?/?$")
CONFORMANCE = "/ogc/conformance"
# What we add to pygeoapi's conformance: our vector tiles (mapserver/tiles.py).
TILES_CONFORMANCE = [
    f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{part}"
    for part in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")
]


class CollectionProvenance:
    def __init__(
        self, app: ASGIApp, engine: Engine, catalogue: Catalogue, settings: Settings
    ) -> None:
        self.app = app
        self.engine = engine
        self.catalogue = catalogue
        self.settings = settings

    def _live(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return live_versions(conn)

    def _annotate(self, collection: dict[str, Any], live: dict[str, Any]) -> None:
        row = live.get(collection.get("id"))
        layer = self.catalogue.layers.get(collection.get("id", ""))
        if row is not None:
            collection["updated"] = row.finished_at.isoformat()
            collection["version"] = row.version
        if layer is not None:
            collection.setdefault("links", []).extend(tile_links(self.settings.base_url, layer.id))
        if layer is not None and layer.synthetic:
            collection["synthetic"] = True

    def _restricted(self, scope: Scope) -> list[dict[str, Any]]:
        """The non-public collections the principal may read (pygeoapi lists the rest)."""
        who = principal(HTTPConnection(scope))
        bbox = list(self.catalogue.council.bbox)
        return [
            collection_document(layer, self.settings.base_url, bbox)
            for layer in self.catalogue.layers.values()
            if layer.access != "public" and who.can_read(layer)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        match = COLLECTIONS.match(scope["path"])
        if not match and scope["path"] != CONFORMANCE:
            await self.app(scope, receive, send)
            return
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        headers = MutableHeaders(raw=start["headers"])
        content = bytes(body)
        if start["status"] == 200 and "json" in headers.get("content-type", ""):
            document = json.loads(content)
            live = await run_in_threadpool(self._live) if match else {}
            if match is None:
                document["conformsTo"] = [*document.get("conformsTo", []), *TILES_CONFORMANCE]
            elif match.group("id"):
                self._annotate(document, live)
            else:
                collections = document.setdefault("collections", [])
                collections += self._restricted(scope)
                for collection in collections:
                    self._annotate(collection, live)
            content = json.dumps(document).encode()
            headers["content-length"] = str(len(content))
        await send(start)
        await send({"type": "http.response.body", "body": content})
