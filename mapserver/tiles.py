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
Rendered tiles are kept in a per-process cache under the same key (``tile_cache``), and
only a miss runs the query, in the thread pool (the event loop keeps serving hits).
A tile with no feature answers ``204 No Content`` (OGC API – Tiles /req/core/tc-error B
allows it; Leaflet.VectorGrid, MapLibre and OpenLayers all draw it as an empty tile, and
proxies see at once that there is nothing to store). Generalisation by zoom: lines and
polygons are simplified by about a pixel and those under a pixel are left out; the points
of ``large`` layers are thinned to one per ``THIN_CELL_PX`` square pixels (a 3 px
marker's width: what is dropped is drawn over by its neighbour).

A tile request may carry ``filter`` (CQL2 text, or JSON with ``filter-lang=cql2-json``,
geometries in CRS84), checked and translated exactly as for items (``mapserver.cql``): the
map draws a filtered large layer from the same tiles, with the filter applied before
thinning. The filter is part of the ETag.
"""

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import morecantile
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from layers.model import Layer, LayerField
from loaders.pipeline import live_versions as loaded_versions
from mapserver import tile_grids, tiles_sql
from mapserver.access import Principal, principal
from mapserver.cql import FilterError, Translator, parse, to_sql
from mapserver.features import JSON_TYPES
from mapserver.features_query import COMMON
from mapserver.features_sql import table_of
from mapserver.ogc import MOUNT
from mapserver.replicas import read_engine
from mapserver.tile_cache import TileCache, TileKey
from mapserver.tile_grids import MATRIX_SETS, MatrixSet, tile_geometry

log = logging.getLogger(__name__)

MVT = "application/vnd.mapbox-vector-tile"
JSON = "application/json"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"

TILE_FORMAT = "mvt-2"  # part of every ETag (with the settings below): bump on SQL changes
VERSION_TTL_S = 2.0  # live layer versions are re-read at most this often
MAX_AGE_S = 60  # how long browsers and proxies may reuse a tile without asking
SIMPLIFY_PX = 1.0  # simplification tolerance of lines and polygons, in pixels
MIN_SIZE_PX = 1.0  # lines and polygons smaller than this (bounding box) are left out
THIN_CELL_PX = 4.0  # large point layers: one point per square cell of this many pixels


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


def negotiate(
    request: Request, f: str | None, name: str, media_type: str, allowed: set[str] = COMMON
) -> None:
    """The only format of a resource: ``f`` names it, or Accept must admit it. No other
    query parameter than ``allowed`` is taken (/req/core/query-param-unknown)."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidParameter(f"unknown query parameter {', '.join(unknown)}")
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
        "layer": layer.id,
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


TILE_PARAMETERS = COMMON | {"filter", "filter-lang"}


@dataclass(frozen=True)
class TileFilter:
    tree: dict  # the CQL2 JSON, for the ETag
    sql: str  # a condition on the candidates' alias ``t``, with named parameters
    params: dict[str, Any]


# Named parameters (":name"), as the rest of the tile statement's ``text()`` uses.
_NAMED = postgresql.psycopg2.dialect(paramstyle="named")


def tile_filter(
    raw: str | None, language: str, layer: Layer, fields: list[LayerField]
) -> TileFilter | None:
    """The request's ``filter`` over the fields the caller may see, or None."""
    if raw is None:
        return None
    if language not in ("cql2-text", "cql2-json"):
        raise InvalidParameter("filter-lang must be cql2-text or cql2-json")
    table = table_of(layer).alias("t")
    columns = {f.name: table.c[f.name] for f in fields}
    columns[layer.id_field] = table.c[layer.id_field]
    try:
        tree = parse(raw, language)
        condition = to_sql(tree, Translator(columns, table.c.geom, layer.srid, 4326))
    except FilterError as exc:
        raise InvalidParameter(str(exc)) from None
    compiled = condition.compile(dialect=_NAMED, compile_kwargs={"render_postcompile": True})
    return TileFilter(tree, str(compiled), dict(compiled.params))


def render_tile(
    engine: Engine,
    layer: Layer,
    fields: list[LayerField],
    tms: MatrixSet,
    tile: morecantile.Tile,
    where: TileFilter | None = None,
) -> tuple[int | None, bytes]:
    """The layer's live version and the tile's MVT bytes (empty when no feature is in it),
    read in one snapshot."""
    query = tile_query(tms, tile, layer)
    if query is None:
        with engine.connect() as conn:
            return conn.execute(text(tiles_sql.LIVE_VERSION), {"layer": layer.id}).scalar(), b""
    statement = tiles_sql.tile(
        layer,
        fields,
        tms_srid=tms.srid,
        web_mercator=tms.web_mercator,
        thin=thinned(layer),
        affine=query.affine,
        where=where.sql if where else None,
    )
    params = query.params | (where.params if where else {})
    with engine.begin() as conn:  # one round trip: the settings, then the tile
        version, value = conn.execute(text(statement), params).one()
    return version, bytes(value) if value else b""


# --- caching ---------------------------------------------------------------------------


class LiveVersions:
    """Every layer's live version from ``app.layer_versions``, re-read at most every
    ``VERSION_TTL_S`` seconds (one small query), so a reload changes ETags within that;
    each reading is passed to the tile cache, which drops the tiles of changed layers."""

    def __init__(self, engine: Engine, cache: TileCache) -> None:
        self.engine = engine
        self.cache = cache
        self._read_at = float("-inf")
        self._versions: dict[str, int] = {}

    async def fresh(self) -> None:
        """Re-read when due, in the thread pool; requests arriving meanwhile go on with the
        versions read before (a tile rendered meanwhile carries the version it was read at)."""
        if time.monotonic() - self._read_at <= VERSION_TTL_S:
            return
        self._read_at = time.monotonic()
        try:
            await run_in_threadpool(self.refresh)
        except BaseException:
            self._read_at = float("-inf")
            raise

    def refresh(self) -> None:
        with self.engine.connect() as conn:
            versions = {k: row.version for k, row in loaded_versions(conn).items()}
        self._versions, self._read_at = versions, time.monotonic()
        self.cache.observe(versions)

    def get(self, layer_id: str) -> int | None:
        return self._versions.get(layer_id)


def live_versions(request: Request, engine: Engine) -> LiveVersions:
    """The versions as ``engine`` (the one rendering the tile) sees them, so an ETag never
    names a version the tile does not show."""
    state = request.app.state
    if not hasattr(state, "tile_versions"):
        state.tile_versions = {}
    versions = state.tile_versions.get(engine)
    if versions is None:
        versions = state.tile_versions[engine] = LiveVersions(engine, state.tile_cache)
    return versions


def tile_key(
    layer: Layer,
    version: int | None,
    fields: list[LayerField],
    tms: MatrixSet,
    tile: morecantile.Tile,
    where: TileFilter | None = None,
) -> TileKey:
    names = tuple(sorted(f.name for f in fields))
    condition = json.dumps(where.tree, sort_keys=True) if where else None
    return TileKey(layer.id, version, names, tms.id, tile.z, tile.y, tile.x, condition)


def tile_etag(key: TileKey) -> str:
    settings = [SIMPLIFY_PX, MIN_SIZE_PX, THIN_CELL_PX, tile_grids.MAX_AFFINE_ERROR_PX]
    parts = [TILE_FORMAT, settings, key.layer, key.version, key.tms, key.z, key.x, key.y]
    parts.append(list(key.fields))
    parts.append(key.filter)
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
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
async def vector_tile(
    request: Request,
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    f: str | None = None,
    filter: str | None = Query(None, description="CQL2 filter on the features drawn"),  # noqa: A002
    filter_lang: str = Query("cql2-text", alias="filter-lang"),
) -> Response:
    layer = readable_layer(request, collection_id)
    tms = matrix_set(tms_id)
    tile = tile_in(tms, tile_matrix, tile_row, tile_col)
    negotiate(request, f, "mvt", MVT, TILE_PARAMETERS)
    who = principal(request)
    fields = who.fields(layer)
    where = tile_filter(filter, filter_lang, layer, fields)
    engine = read_engine(request)
    versions = live_versions(request, engine)
    await versions.fresh()
    key = tile_key(layer, versions.get(layer.id), fields, tms, tile, where)
    cache: TileCache = request.app.state.tile_cache
    # A managed layer (residents' reports) changes with every report: it has no load
    # version to make an ETag from, and its tiles are not kept.
    cached = bool(cache.max_bytes) and not layer.managed
    if layer.managed:
        headers = {"Cache-Control": "no-store", "Vary": "Authorization, X-API-Key"}
    else:
        headers = cache_headers(tile_etag(key), layer, who)
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
    started = time.perf_counter()
    body = cache.get(key) if cached else None
    outcome = "hit" if body is not None else "miss"
    if body is None:

        async def render() -> tuple[int | None, bytes]:
            return await run_in_threadpool(render_tile, engine, layer, fields, tms, tile, where)

        version, body = await (cache.render_once(key, render) if cached else render())
        if cached and version != key.version:  # loaded or rolled back since the versions were read
            headers |= cache_headers(tile_etag(replace(key, version=version)), layer, who)
    headers["Server-Timing"] = (
        f'tile;desc="{outcome}";dur={(time.perf_counter() - started) * 1000:.1f}'
    )
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MVT, headers=headers)
