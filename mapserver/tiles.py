"""OGC API – Tiles: vector tiles of every layer, made by PostGIS ``ST_AsMVT``.

Served by the app itself under ``/ogc`` (this router comes before the pygeoapi mount):
pygeoapi's ``MVT-postgresql`` provider took ~20 s a tile here. Paths follow OGC API –
Tiles 1.0 (``tileMatrix/tileRow/tileCol``, i.e. ``z/y/x``)::

    /ogc/tileMatrixSets                                   tile matrix sets offered
    /ogc/tileMatrixSets/{tms}                             one, as OGC 2D-TMS 2.0 JSON
    /ogc/collections/{id}/tiles                           a layer's tilesets
    /ogc/collections/{id}/tiles/{tms}                     tileset metadata (+ TileJSON keys)
    /ogc/collections/{id}/tiles/{tms}/{z}/{y}/{x}         one Mapbox vector tile

Tile matrix sets (``tile_grids``): ``WebMercatorQuad`` and ``OSGB36BritishNationalGrid``,
Ordnance Survey's ZXY grid on British National Grid. The SQL is in ``tiles_sql``.

A tile has one MVT layer named after the collection; its feature id is the layer's id
field and its attributes are the fields the caller may read (``access.Principal.fields``).
A layer the caller may not read answers 404 exactly like an unknown one. Each tile has an
``ETag`` from the layer's live version (so a reload changes it within ``VERSION_TTL_S``),
the tile and the field set; a matching ``If-None-Match`` gets a 304 without the tile query.
A tile with no feature answers ``204 No Content`` (OGC API – Tiles /req/core/tc-error B
allows it; Leaflet.VectorGrid, MapLibre and OpenLayers all draw it as an empty tile, and
proxies see at once that there is nothing to store). Generalisation by zoom: lines and
polygons are simplified by about a pixel and those under a pixel are left out; the points
of ``large`` layers are thinned to one per ``THIN_CELL_PX`` square pixels.
"""

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import morecantile
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from layers.model import Layer, LayerField
from loaders.pipeline import live_versions as loaded_versions
from mapserver import tile_grids, tiles_sql
from mapserver.access import Principal, principal
from mapserver.features import JSON_TYPES
from mapserver.ogc import MOUNT
from mapserver.replicas import read_engine
from mapserver.tile_grids import MATRIX_SETS, MatrixSet, tile_geometry

log = logging.getLogger(__name__)

MVT = "application/vnd.mapbox-vector-tile"
JSON = "application/json"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"

TILE_FORMAT = "mvt-1"  # part of every ETag (with the settings below): bump on SQL changes
VERSION_TTL_S = 2.0  # live layer versions are re-read at most this often
MAX_AGE_S = 60  # how long browsers and proxies may reuse a tile without asking
SIMPLIFY_PX = 1.0  # simplification tolerance of lines and polygons, in pixels
MIN_SIZE_PX = 1.0  # lines and polygons smaller than this (bounding box) are left out
THIN_CELL_PX = 2.0  # large point layers: one point per square cell of this many pixels


# --- errors: one table from exception to HTTP status and OGC exception code ----------


class TileError(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class NotFound(TileError):
    pass


class InvalidParameter(TileError):
    pass


class NotAcceptable(TileError):
    pass


class Unavailable(TileError):
    pass


ERRORS: dict[type[TileError], tuple[int, str]] = {
    NotFound: (404, "NotFound"),
    InvalidParameter: (400, "InvalidParameterValue"),
    NotAcceptable: (406, "NotAcceptable"),
    Unavailable: (503, "ServiceUnavailable"),
}


def error_response(error: TileError) -> JSONResponse:
    status, code = ERRORS[type(error)]
    return JSONResponse(
        {"code": code, "type": code, "description": error.description}, status_code=status
    )


def _as_tile_error(exc: Exception) -> TileError | None:
    if isinstance(exc, TileError):
        return exc
    if isinstance(exc, RequestValidationError):
        return InvalidParameter("; ".join(str(e.get("msg", e)) for e in exc.errors()))
    if isinstance(exc, DBAPIError):
        log.exception("tile request failed in the database")
        return Unavailable("The database did not answer; try again shortly.")
    return None


class OGCRoute(APIRoute):
    """Answers every mapped error as an OGC exception document (JSON)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                error = _as_tile_error(exc)
                if error is None:
                    raise
                return error_response(error)

        return guarded


router = APIRouter(route_class=OGCRoute, tags=["tiles"])


# --- request parsing -------------------------------------------------------------------


def matrix_set(tms_id: str) -> MatrixSet:
    try:
        return MATRIX_SETS[tms_id]
    except KeyError:
        known = ", ".join(MATRIX_SETS)
        raise NotFound(f"No tile matrix set {tms_id!r}. Offered: {known}.") from None


def tile_in(tms: MatrixSet, tile_matrix: str, tile_row: str, tile_col: str) -> morecantile.Tile:
    """The tile of the path: 400 when a part is not an integer, 404 when it is outside."""
    z = _integer("tileMatrix", tile_matrix)
    y = _integer("tileRow", tile_row)
    x = _integer("tileCol", tile_col)
    if reason := tms.outside(z, x, y):
        raise NotFound(reason)
    return morecantile.Tile(x, y, z)


INTEGER = re.compile(r"-?[0-9]{1,9}")


def _integer(name: str, value: str) -> int:
    if not INTEGER.fullmatch(value):
        raise InvalidParameter(f"{name} must be an integer, not {value!r}.")
    return int(value)


def _accepts(accept: str, media_type: str) -> bool:
    kind = media_type.split("/")[0]
    for part in accept.split(","):
        offered = part.split(";")[0].strip().lower()
        if offered in ("*/*", f"{kind}/*", media_type) or not offered:
            return True
    return False


def negotiate(request: Request, f: str | None, name: str, media_type: str) -> None:
    """The only format of a resource: ``f`` names it, or Accept must admit it."""
    if f is not None:
        if f.lower() != name:
            raise InvalidParameter(f"f={f!r} is not offered here; use f={name}.")
        return
    accept = request.headers.get("accept")
    if accept and not _accepts(accept, media_type):
        raise NotAcceptable(f"This resource is only available as {media_type}.")


def readable_layer(request: Request, collection_id: str) -> Layer:
    """The catalogue layer, if the caller may read it; otherwise the same 404 as for an
    unknown collection, so a restricted layer's existence does not leak."""
    layer = request.app.state.catalogue.layers.get(collection_id)
    if layer is None or not principal(request).can_read(layer):
        raise NotFound("Collection not found")
    return layer


# --- links and documents ---------------------------------------------------------------


def ogc_url(request: Request) -> str:
    return request.app.state.settings.base_url + MOUNT


def tile_links(base_url: str, collection_id: str) -> list[dict]:
    """Links from a collection document to its vector tilesets. ``base_url`` is the
    service's public root (``Settings.base_url``, without ``/ogc``)."""
    return [
        {
            "rel": REL + "tilesets-vector",
            "type": JSON,
            "title": "Vector tilesets",
            "href": f"{base_url}{MOUNT}/collections/{collection_id}/tiles",
        }
    ]


def _tile_template(collection_url: str, tms: MatrixSet, placeholders: str) -> str:
    return f"{collection_url}/tiles/{tms.id}/{placeholders}"


def _tileset_summary(collection_url: str, tms: MatrixSet) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "title": f"{tms.tms.title}",
        "dataType": "vector",
        "crs": tms.crs_uri,
    }
    if tms.tms.uri:
        summary["tileMatrixSetURI"] = tms.tms.uri
    summary["links"] = [
        {"rel": "self", "type": JSON, "href": f"{collection_url}/tiles/{tms.id}"},
        {
            "rel": REL + "tiling-scheme",
            "type": JSON,
            "href": f"{collection_url.split('/collections/')[0]}/tileMatrixSets/{tms.id}",
        },
        {
            "rel": "item",
            "type": MVT,
            "templated": True,
            "href": _tile_template(collection_url, tms, "{tileMatrix}/{tileRow}/{tileCol}"),
        },
    ]
    return summary


def _geometry_dimension(layer: Layer) -> int:
    if layer.geometry.endswith("Point"):
        return 0
    return 1 if layer.geometry.endswith("LineString") else 2


def tileset_document(
    collection_url: str, layer: Layer, fields: list[LayerField], tms: MatrixSet
) -> dict[str, Any]:
    """OGC 2D-TMS 2.0 tileset metadata, with TileJSON 3.0 keys (``tiles``,
    ``vector_layers``) for clients that read those."""
    document = _tileset_summary(collection_url, tms)
    minzoom, maxzoom = tms.tms.minzoom, tms.tms.maxzoom
    document |= {
        "title": f"{layer.title} ({tms.tms.title})",
        "description": layer.description,
        "attribution": layer.attribution,
        "license": layer.licence,
    }
    document["links"].append(
        {
            "rel": REL + "geodata",
            "type": JSON,
            "title": layer.title,
            "href": collection_url,
        }
    )
    document["layers"] = [
        {
            "id": layer.id,
            "title": layer.title,
            "dataType": "vector",
            "geometryDimension": _geometry_dimension(layer),
            "minTileMatrix": str(minzoom),
            "maxTileMatrix": str(maxzoom),
            "propertiesSchema": {
                "type": "object",
                "properties": {f.name: {"title": f.label, **JSON_TYPES[f.type]} for f in fields},
            },
        }
    ]
    if tms.web_mercator:
        document["tilejson"] = "3.0.0"
    document |= {
        "tiles": [_tile_template(collection_url, tms, "{z}/{y}/{x}")],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.title,
                "minzoom": minzoom,
                "maxzoom": maxzoom,
                "fields": {f.name: f.label for f in fields},
            }
        ],
    }
    return document


# --- tiles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TileQuery:
    params: dict[str, float | int]
    affine: bool  # reprojected by a fitted affine map instead of ST_Transform


def tile_query(tms: MatrixSet, tile: morecantile.Tile, layer: Layer) -> TileQuery | None:
    """Parameters of the tile statement (see ``tiles_sql``); None when the tile is outside
    the area where the layer's CRS is defined (so it holds nothing)."""
    geometry = tile_geometry(tms.id, tile, layer.srid)
    if geometry is None:
        return None
    params: dict[str, float | int] = dict(
        zip(("fxmin", "fymin", "fxmax", "fymax"), geometry.candidates, strict=True)
    )
    params |= {
        "tolerance": geometry.pixel * SIMPLIFY_PX,
        "min_size": geometry.pixel * MIN_SIZE_PX,
        "cell": geometry.pixel * THIN_CELL_PX,
    }
    if tms.web_mercator:
        params |= {"z": tile.z, "x": tile.x, "y": tile.y}
    else:
        params |= dict(zip(("txmin", "tymin", "txmax", "tymax"), geometry.box, strict=True))
    if geometry.affine is not None:
        params |= dict(zip(("a", "b", "d", "e", "xoff", "yoff"), geometry.affine, strict=True))
    return TileQuery(params, geometry.affine is not None)


def thinned(layer: Layer) -> bool:
    return layer.large and layer.geometry.endswith("Point")


def render_tile(
    engine: Engine, layer: Layer, fields: list[LayerField], tms: MatrixSet, tile: morecantile.Tile
) -> bytes:
    """The tile's MVT bytes; empty when no feature is in it."""
    query = tile_query(tms, tile, layer)
    if query is None:
        return b""
    statement = tiles_sql.tile(
        layer,
        fields,
        tms_srid=tms.srid,
        web_mercator=tms.web_mercator,
        thin=thinned(layer),
        affine=query.affine,
    )
    with engine.begin() as conn:
        conn.execute(text(tiles_sql.TILE_SETTINGS))
        value = conn.execute(text(statement), query.params).scalar_one()
    return bytes(value) if value else b""


# --- caching ---------------------------------------------------------------------------


class LiveVersions:
    """Every layer's live version from ``app.layer_versions``, re-read at most every
    ``VERSION_TTL_S`` seconds (one small query), so a reload changes ETags within that."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read_at = float("-inf")
        self._versions: dict[str, int] = {}

    def get(self, layer_id: str) -> int | None:
        now = time.monotonic()
        if now - self._read_at > VERSION_TTL_S:
            with self.engine.connect() as conn:
                self._versions = {k: row.version for k, row in loaded_versions(conn).items()}
            self._read_at = now
        return self._versions.get(layer_id)


def live_versions(request: Request, engine: Engine) -> LiveVersions:
    """The versions as ``engine`` (the one rendering the tile) sees them, so an ETag never
    names a version the tile does not show."""
    state = request.app.state
    if not hasattr(state, "tile_versions"):
        state.tile_versions = {}
    versions = state.tile_versions.get(engine)
    if versions is None:
        versions = state.tile_versions[engine] = LiveVersions(engine)
    return versions


def tile_etag(
    layer_id: str,
    version: int | None,
    tms_id: str,
    tile: morecantile.Tile,
    fields: list[LayerField],
) -> str:
    settings = [SIMPLIFY_PX, MIN_SIZE_PX, THIN_CELL_PX, tile_grids.MAX_AFFINE_ERROR_PX]
    key = [TILE_FORMAT, settings, layer_id, version, tms_id, tile.z, tile.x, tile.y]
    key.append(sorted(f.name for f in fields))
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    return f'W/"{digest}"'  # weak: equal tiles, not necessarily equal bytes


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as If-None-Match uses (RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def cache_headers(etag: str, layer: Layer, who: Principal) -> dict[str, str]:
    shared = layer.access == "public" and who.role is None
    return {
        "ETag": etag,
        "Cache-Control": f"{'public' if shared else 'private'}, max-age={MAX_AGE_S}",
        "Vary": "Authorization, X-API-Key",
    }


# --- routes ----------------------------------------------------------------------------


@router.get("/ogc/tileMatrixSets", summary="Tile matrix sets offered")
@router.get("/ogc/TileMatrixSets", include_in_schema=False)  # the path pygeoapi links to
def tile_matrix_sets(request: Request, f: str | None = None) -> JSONResponse:
    negotiate(request, f, "json", JSON)
    root = ogc_url(request)
    return JSONResponse(
        {
            "links": [{"rel": "self", "type": JSON, "href": f"{root}/tileMatrixSets"}],
            "tileMatrixSets": [
                {
                    "id": tms.id,
                    "title": tms.tms.title,
                    **({"uri": tms.tms.uri} if tms.tms.uri else {}),
                    "crs": tms.crs_uri,
                    "links": [
                        {
                            "rel": "self",
                            "type": JSON,
                            "href": f"{root}/tileMatrixSets/{tms.id}",
                        }
                    ],
                }
                for tms in MATRIX_SETS.values()
            ],
        }
    )


@router.get("/ogc/tileMatrixSets/{tms_id}", summary="A tile matrix set (OGC 2D-TMS 2.0)")
@router.get("/ogc/TileMatrixSets/{tms_id}", include_in_schema=False)
def tile_matrix_set(request: Request, tms_id: str, f: str | None = None) -> JSONResponse:
    negotiate(request, f, "json", JSON)
    return JSONResponse(matrix_set(tms_id).tms.model_dump(exclude_none=True, mode="json"))


@router.get("/ogc/collections/{collection_id}/tiles", summary="A collection's vector tilesets")
def tilesets(request: Request, collection_id: str, f: str | None = None) -> JSONResponse:
    layer = readable_layer(request, collection_id)
    negotiate(request, f, "json", JSON)
    collection_url = f"{ogc_url(request)}/collections/{layer.id}"
    return JSONResponse(
        {
            "links": [
                {"rel": "self", "type": JSON, "href": f"{collection_url}/tiles"},
                {"rel": REL + "geodata", "type": JSON, "href": collection_url},
            ],
            "tilesets": [_tileset_summary(collection_url, tms) for tms in MATRIX_SETS.values()],
        }
    )


@router.get("/ogc/collections/{collection_id}/tiles/{tms_id}", summary="Tileset metadata")
def tileset(request: Request, collection_id: str, tms_id: str, f: str | None = None) -> Response:
    layer = readable_layer(request, collection_id)
    tms = matrix_set(tms_id)
    negotiate(request, f, "json", JSON)
    collection_url = f"{ogc_url(request)}/collections/{layer.id}"
    fields = principal(request).fields(layer)
    return JSONResponse(tileset_document(collection_url, layer, fields, tms))


@router.get(
    "/ogc/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A vector tile",
    response_class=Response,
    responses={
        200: {"content": {MVT: {}}, "description": "The tile"},
        204: {"description": "No feature in this tile"},
        304: {"description": "Not modified (If-None-Match)"},
    },
)
def vector_tile(
    request: Request,
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    f: str | None = None,
) -> Response:
    layer = readable_layer(request, collection_id)
    tms = matrix_set(tms_id)
    tile = tile_in(tms, tile_matrix, tile_row, tile_col)
    negotiate(request, f, "mvt", MVT)
    who = principal(request)
    fields = who.fields(layer)
    engine = read_engine(request)
    version = live_versions(request, engine).get(layer.id)
    headers = cache_headers(tile_etag(layer.id, version, tms.id, tile, fields), layer, who)
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    started = time.perf_counter()
    body = render_tile(engine, layer, fields, tms, tile)
    headers["Server-Timing"] = f"tile;dur={(time.perf_counter() - started) * 1000:.1f}"
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MVT, headers=headers)
