"""OGC API – Features items, items/{id}, queryables and (for non-public layers) collection
documents, served by us in front of pygeoapi.

pygeoapi stays the OGC API's landing page, conformance, collection list and HTML pages;
GeoJSON for items is ours because it must be fast on big layers, exact about CRS, strict
about parameters and aware of who asks (restricted layers and fields). HTML requests for
public layers are validated here, then handed to pygeoapi.
"""

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.model import Layer
from mapserver.access import Principal, principal
from mapserver.cql import FilterError
from mapserver.features_query import (
    CRS84,
    ITEM,
    ItemsQuery,
    OGCError,
    bad,
    boolean,
    fields_list,
    items_query,
    offered_crs,
    output_crs,
    response_format,
    unknown_parameters,
)
from mapserver.features_sql import count_statement, item_statement, items_statement, table_of
from mapserver.ogc import MOUNT
from mapserver.replicas import read_engine

GEOJSON = "application/geo+json"
FEATURE_ID = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: str.isdigit() takes "¹"
MAX_FILTER_BYTES = 1 << 20
JSON_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}
GEOMETRY_FORMATS = {
    "Point": "geometry-point", "MultiPoint": "geometry-multipoint",
    "LineString": "geometry-linestring", "MultiLineString": "geometry-multilinestring",
    "Polygon": "geometry-polygon", "MultiPolygon": "geometry-multipolygon",
}  # fmt: skip

router = APIRouter(include_in_schema=False)


def ogc_error(error: OGCError) -> JSONResponse:
    return JSONResponse(
        {"code": error.code, "description": error.description}, status_code=error.status
    )


def not_found(collection_id: str) -> OGCError:
    return OGCError(404, "NotFound", f"Collection {collection_id!r} not found")


def readable(request: Request, collection_id: str) -> tuple[Layer, Principal]:
    """The layer, if it exists and this principal may read it; 404 otherwise, so that a
    restricted layer's existence does not leak."""
    who = principal(request)
    layer = request.app.state.catalogue.layers.get(collection_id)
    if layer is None or not who.can_read(layer):
        raise not_found(collection_id)
    return layer, who


class ToPygeoapi(Response):
    """Hands the request to pygeoapi as its ``/ogc`` mount would; with ``body``, that body
    replaces the one the client sent."""

    def __init__(self, app: ASGIApp, body: bytes | None = None) -> None:
        self.app = app
        self.replacement = body
        self.background = None  # FastAPI looks for it on every Response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mounted = {**scope, "root_path": scope.get("root_path", "") + MOUNT}
        if self.replacement is None:
            await self.app(mounted, receive, send)
            return
        body = self.replacement
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        mounted["headers"] = [*headers, (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(mounted, replay, send)


def _private_headers(who: Principal) -> dict[str, str]:
    if who.role is None:
        return {"Vary": "X-API-Key, Authorization"}
    return {"Cache-Control": "private, no-store", "Vary": "X-API-Key, Authorization"}


def _links(
    request: Request, layer: Layer, query: ItemsQuery, has_next: bool, params: QueryParams
) -> list[dict]:
    base = f"{request.app.state.settings.base_url}{MOUNT}/collections/{layer.id}/items"
    kept = [(k, v) for k, v in params.multi_items() if k not in ("offset", "f")]

    def url(offset: int, fmt: str = "json") -> str:
        return f"{base}?{urlencode([*kept, ('f', fmt), ('offset', str(offset))])}"

    links = [
        {"rel": "self", "type": GEOJSON, "title": "This page", "href": url(query.offset)},
        {
            "rel": "collection", "type": "application/json", "title": layer.title,
            "href": f"{request.app.state.settings.base_url}{MOUNT}/collections/{layer.id}",
        },
    ]  # fmt: skip
    if layer.access == "public":
        links.append(
            {"rel": "alternate", "type": "text/html", "title": "This page as HTML",
             "href": url(query.offset, "html")}
        )  # fmt: skip
    if has_next:
        links.append({"rel": "next", "type": GEOJSON, "title": "Next page",
                      "href": url(query.offset + query.limit)})  # fmt: skip
    if query.offset > 0:
        links.append({"rel": "prev", "type": GEOJSON, "title": "Previous page",
                      "href": url(max(query.offset - query.limit, 0))})  # fmt: skip
    return links


def failure(exc: OGCError | FilterError | DBAPIError) -> JSONResponse:
    """The OGC exception answer for what went wrong with a request."""
    if isinstance(exc, FilterError):
        return ogc_error(bad(str(exc)))
    if isinstance(exc, DBAPIError):
        return ogc_error(_database_error(exc))
    return ogc_error(exc)


def _database_error(exc: DBAPIError) -> OGCError:
    if isinstance(exc, OperationalError):
        return OGCError(503, "ServiceUnavailable", "The database is not available; try again.")
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid query"
    return bad(f"the query could not be applied to this collection: {reason}")


@router.get(MOUNT + "/collections/{collection_id}/items")
def items(request: Request, collection_id: str) -> Response:
    return _items(request, collection_id, request.query_params)


@router.post(MOUNT + "/collections/{collection_id}/items")
async def items_by_post(request: Request, collection_id: str) -> Response:
    """A CQL2-JSON filter in the body (Part 3), with the other parameters in the query.
    Creating features (a GeoJSON body) is not offered."""
    if request.headers.get("content-type", "").startswith("application/geo+json"):
        return read_only(request, collection_id)
    body = await request.body()
    try:
        if len(body) > MAX_FILTER_BYTES:
            raise OGCError(413, "PayloadTooLarge", "The filter is too large.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("the filter is not UTF-8 JSON") from None
    except OGCError as error:
        return ogc_error(error)
    params = QueryParams(
        [*request.query_params.multi_items(), ("filter", text), ("filter-lang", "cql2-json")]
    )
    return await run_in_threadpool(_items, request, collection_id, params)


def _items(request: Request, collection_id: str, params: QueryParams) -> Response:
    try:
        layer, who = readable(request, collection_id)
        visible = who.fields(layer)
        query = items_query(params, request.headers.get("accept", ""), layer, visible)
        if request.method == "POST" and query.format != "json" and query.format != "geojson":
            raise bad("a filter sent in the body is answered in GeoJSON only")
        if query.format in ("html", "jsonld"):
            if layer.access != "public":
                raise bad(f"f={query.format} is offered for public collections only; use f=json")
            return ToPygeoapi(request.app.state.pygeoapi)
        table = table_of(layer)
        with read_engine(request).connect() as conn:
            rows: list[str] = []
            if not query.hits_only:
                rows = list(conn.execute(items_statement(table, layer, query, visible)).scalars())
            matched = None
            if query.hits_only or not layer.large:
                matched = conn.execute(count_statement(table, layer, query, visible)).scalar()
    except (OGCError, FilterError, DBAPIError) as exc:
        return failure(exc)
    has_next = len(rows) > query.limit
    rows = rows[: query.limit]
    head: dict[str, Any] = {"type": "FeatureCollection"}
    tail: dict[str, Any] = {"numberReturned": len(rows)}
    if matched is not None:
        tail["numberMatched"] = matched
    tail["timeStamp"] = datetime.now(UTC).isoformat(timespec="seconds")
    tail["links"] = _links(request, layer, query, has_next and not query.hits_only, params)
    body = (
        json.dumps(head)[:-1] + ', "features": [' + ",".join(rows) + "], "
        + json.dumps(tail)[1:]
    )  # fmt: skip
    return Response(
        body,
        media_type=GEOJSON,
        headers={"Content-Crs": f"<{query.crs.uri}>", **_private_headers(who)},
    )


def read_only(request: Request, collection_id: str) -> JSONResponse:
    """OGC API – Features Part 4 (create, replace, update, delete) is not offered: pygeoapi's
    transactions have no access control of their own and trust the body's id over the URL's.
    A collection the caller may not read is a 404, as for every other request."""
    try:
        readable(request, collection_id)
    except OGCError as error:
        return ogc_error(error)
    response = ogc_error(OGCError(405, "MethodNotAllowed", "This collection cannot be edited."))
    allow = "GET, POST" if request.url.path.endswith("/items") else "GET"
    response.headers["Allow"] = allow
    return response


@router.api_route(MOUNT + "/collections/{collection_id}/items", methods=["PUT", "PATCH", "DELETE"])
def items_read_only(request: Request, collection_id: str) -> JSONResponse:
    return read_only(request, collection_id)


@router.api_route(
    MOUNT + "/collections/{collection_id}/items/{feature_id}",
    methods=["POST", "PUT", "PATCH", "DELETE"],
)
def item_read_only(request: Request, collection_id: str, feature_id: str) -> JSONResponse:
    return read_only(request, collection_id)


@router.get(MOUNT + "/collections/{collection_id}/items/{feature_id}")
def item(request: Request, collection_id: str, feature_id: str) -> Response:
    try:
        layer, who = readable(request, collection_id)
        visible = who.fields(layer)
        params = request.query_params
        unknown_parameters(params, ITEM)
        fmt = response_format(params, request.headers.get("accept", ""))
        if fmt in ("html", "jsonld"):
            if layer.access != "public":
                raise bad(f"f={fmt} is offered for public collections only; use f=json")
            return ToPygeoapi(request.app.state.pygeoapi)
        if not FEATURE_ID.fullmatch(feature_id):
            raise OGCError(404, "NotFound", f"Feature {feature_id!r} not found")
        names = fields_list(params.get("properties"), {f.name: f for f in visible}, "properties")
        crs = output_crs(params, layer)
        statement = item_statement(
            layer, names if names is not None else [f.name for f in visible],
            crs, boolean(params, "skipGeometry"),
        )  # fmt: skip
        with read_engine(request).connect() as conn:
            feature = conn.execute(statement, {"fid": int(feature_id)}).scalar()
        if feature is None:
            raise OGCError(404, "NotFound", f"Feature {feature_id!r} not found")
    except (OGCError, DBAPIError) as exc:
        return failure(exc)
    base = f"{request.app.state.settings.base_url}{MOUNT}/collections/{layer.id}"
    links = [
        {"rel": "self", "type": GEOJSON, "href": f"{base}/items/{feature_id}?f=json"},
        {"rel": "collection", "type": "application/json", "href": base},
    ]
    body = feature[:-1] + ', "links": ' + json.dumps(links) + "}"
    return Response(
        body, media_type=GEOJSON,
        headers={"Content-Crs": f"<{crs.uri}>", **_private_headers(who)},
    )  # fmt: skip


def queryables_document(layer: Layer, who: Principal, base_url: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "geom": {"title": "Geometry", "format": GEOMETRY_FORMATS[layer.geometry],
                 "x-ogc-role": "primary-geometry"},
        layer.id_field: {"title": "Feature id", "type": "integer", "x-ogc-role": "id"},
    }  # fmt: skip
    for spec in who.fields(layer):
        properties[spec.name] = {"title": spec.label, **JSON_TYPES[spec.type]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url}{MOUNT}/collections/{layer.id}/queryables",
        "type": "object",
        "title": layer.title,
        "properties": properties,
        "additionalProperties": False,
    }


@router.get(MOUNT + "/collections/{collection_id}/queryables")
def queryables(request: Request, collection_id: str) -> Response:
    try:
        layer, who = readable(request, collection_id)
        unknown_parameters(request.query_params, {"f", "lang"})
        if response_format(request.query_params, "") == "html" and layer.access == "public":
            return ToPygeoapi(request.app.state.pygeoapi)
    except OGCError as error:
        return ogc_error(error)
    document = queryables_document(layer, who, request.app.state.settings.base_url)
    return JSONResponse(
        document, media_type="application/schema+json", headers=_private_headers(who)
    )


def collection_document(layer: Layer, base_url: str, bbox: list[float]) -> dict[str, Any]:
    """For layers pygeoapi does not publish (staff and emergency ones)."""
    base = f"{base_url}{MOUNT}/collections/{layer.id}"
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "keywords": [layer.theme, *layer.keywords],
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}},
        "crs": offered_crs(layer),
        "storageCrs": f"http://www.opengis.net/def/crs/EPSG/0/{layer.srid}",
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}?f=json"},
            {"rel": "items", "type": GEOJSON, "href": f"{base}/items?f=json"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "href": f"{base}/queryables",
            },
        ],  # fmt: skip
    }


@router.get(MOUNT + "/collections/{collection_id}")
def collection(request: Request, collection_id: str) -> Response:
    try:
        layer, who = readable(request, collection_id)
        unknown_parameters(request.query_params, {"f", "lang"})
        if layer.access == "public":
            return ToPygeoapi(request.app.state.pygeoapi)
    except OGCError as error:
        return ogc_error(error)
    council = request.app.state.catalogue.council
    document = collection_document(layer, request.app.state.settings.base_url, list(council.bbox))
    return JSONResponse(document, headers=_private_headers(who))
