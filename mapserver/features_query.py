"""The query parameters of OGC API – Features items requests, each parsed and checked by
one small function against the layer and what the principal may see. Anything unknown or
malformed is an :class:`OGCError` (400 with an OGC exception body), never ignored."""

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.datastructures import QueryParams

from layers.model import Layer, LayerField
from mapserver.cql import FilterError, parse

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 2**62  # PostgreSQL's OFFSET is a bigint
COMMON = {"f", "lang"}
ITEMS = COMMON | {
    "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang",
    "filter-crs", "sortby", "properties", "skipGeometry", "resulttype",
}  # fmt: skip
ITEM = COMMON | {"crs", "properties", "skipGeometry"}
FORMATS = {"json", "geojson", "html", "jsonld"}


class OGCError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


def bad(description: str, code: str = "InvalidParameterValue") -> OGCError:
    return OGCError(400, code, description)


def crs_srid(uri: str, parameter: str) -> int:
    """The SRID of an offered CRS URI (CRS84 is 4326 with lon/lat order)."""
    if uri in (CRS84, "CRS84", "OGC:CRS84"):
        return 4326
    prefix = EPSG_URI.format("")
    if uri.startswith(prefix) and uri[len(prefix) :].isdigit():
        return int(uri[len(prefix) :])
    if uri.upper().startswith("EPSG:") and uri[5:].isdigit():
        return int(uri[5:])
    raise bad(f"{parameter}: {uri!r} is not a CRS this service offers")


def offered_crs(layer: Layer) -> list[str]:
    return [CRS84, EPSG_URI.format(layer.srid), EPSG_URI.format(4326)]


@dataclass(frozen=True)
class OutputCrs:
    uri: str
    srid: int
    lat_lon: bool  # EPSG:4326 proper: latitude first


def output_crs(params: QueryParams, layer: Layer) -> OutputCrs:
    uri = params.get("crs", CRS84)
    if uri not in offered_crs(layer):
        raise bad(f"crs: {uri!r} is not offered; use one of {', '.join(offered_crs(layer))}")
    srid = crs_srid(uri, "crs")
    return OutputCrs(uri, srid, lat_lon=uri == EPSG_URI.format(4326))


@dataclass(frozen=True)
class BBox:
    coords: tuple[float, float, float, float]
    srid: int
    lat_lon: bool  # given as EPSG:4326 (latitude first)


def bbox(params: QueryParams, layer: Layer) -> BBox | None:
    raw = params.get("bbox")
    crs = params.get("bbox-crs")
    if raw is None:
        if crs is not None:
            raise bad("bbox-crs given without bbox")
        return None
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        raise bad("bbox: expected 4 or 6 comma-separated numbers") from None
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise bad("bbox: expected 4 or 6 comma-separated numbers")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    uri = crs or CRS84
    if uri not in offered_crs(layer):
        raise bad(f"bbox-crs: {uri!r} is not offered for this collection")
    lat_lon = uri == EPSG_URI.format(4326)
    minx, miny, maxx, maxy = numbers
    if lat_lon:
        minx, miny, maxx, maxy = miny, minx, maxy, maxx
    if miny > maxy:
        raise bad("bbox: the lower corner must be below the upper one")
    srid = crs_srid(uri, "bbox-crs")
    in_range = -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if srid == 4326 and not in_range:
        raise bad("bbox: longitude/latitude out of range")
    return BBox((minx, miny, maxx, maxy), srid, lat_lon)


def integer(
    params: QueryParams, name: str, default: int, low: int, high: int, clamp: bool = True
) -> int:
    """A whole number from ``low``; above ``high`` it is clamped (limit) or refused."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name}: {raw!r} is not a whole number") from None
    if value < low:
        raise bad(f"{name} must be at least {low}")
    if value > high and not clamp:
        raise bad(f"{name} must be at most {high}")
    return min(value, high)


def fields_list(raw: str | None, visible: dict[str, LayerField], name: str) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise bad(f"{name}: unknown property {', '.join(unknown)} (see the queryables)")
    return names


def sortby(
    raw: str | None, visible: dict[str, LayerField], id_field: str
) -> list[tuple[str, bool]]:
    """(field, descending) pairs."""
    if raw is None:
        return []
    order = []
    for term in (t.strip() for t in raw.split(",")):
        descending = term.startswith("-")
        name = term.lstrip("+-").strip()
        if name != id_field and name not in visible:
            raise bad(f"sortby: unknown property {name!r} (see the queryables)")
        order.append((name, descending))
    return order


def _moment(text: str, name: str) -> date | datetime | None:
    if text in ("..", ""):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{name}: {text!r} is not an RFC 3339 date or date-time") from None


def datetime_range(params: QueryParams, layer: Layer) -> tuple[Any, Any] | None:
    """(start, end) bounds, either open; an instant gives start == end."""
    raw = params.get("datetime")
    if raw is None:
        return None
    if not layer.time_field:
        raise bad("datetime: this collection has no time field")
    if "/" in raw:
        start_text, _, end_text = raw.partition("/")
        start, end = _moment(start_text, "datetime"), _moment(end_text, "datetime")
        if start and end and start > end:
            raise bad("datetime: the interval ends before it starts")
        return start, end
    instant = _moment(raw, "datetime")
    if instant is None:
        raise bad("datetime: expected an instant or an interval")
    return instant, instant


def boolean(params: QueryParams, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise bad(f"{name} must be true or false")
    return raw == "true"


def typed(value: str, spec: LayerField) -> Any:  # noqa: ANN401
    """A property filter's value in the field's type."""
    try:
        if spec.type == "integer":
            return int(value)
        if spec.type == "number":
            return float(value)
        if spec.type == "boolean":
            return {"true": True, "false": False}[value.lower()]
        if spec.type in ("date", "datetime"):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, KeyError):
        raise bad(f"{spec.name}: {value!r} is not a valid {spec.type}") from None
    return value


@dataclass
class ItemsQuery:
    format: str
    limit: int
    offset: int
    crs: OutputCrs
    bbox: BBox | None
    datetime: tuple[Any, Any] | None
    filter: dict | None
    filter_srid: int
    sortby: list[tuple[str, bool]]
    properties: list[str] | None
    skip_geometry: bool
    hits_only: bool
    equals: dict[str, Any] = field(default_factory=dict)


def response_format(params: QueryParams, accept: str) -> str:
    requested = params.get("f")
    if requested is not None:
        if requested not in FORMATS:
            raise bad(f"f: {requested!r} is not a format of this service ({', '.join(FORMATS)})")
        return requested
    return "html" if "text/html" in accept else "json"


def unknown_parameters(params: QueryParams, allowed: set[str]) -> None:
    """Refuses parameters this request does not take, and NUL characters anywhere (text in
    PostgreSQL cannot hold them)."""
    if any("\x00" in f"{k}{v}" for k, v in params.multi_items()):
        raise bad("parameters cannot contain NUL characters")
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise bad(f"unknown query parameter {', '.join(unknown)}", "InvalidParameterValue")


def items_query(
    params: QueryParams, accept: str, layer: Layer, visible: list[LayerField]
) -> ItemsQuery:
    by_name = {f.name: f for f in visible}
    unknown_parameters(params, ITEMS | set(by_name))
    for name in set(params.keys()):
        if len(params.getlist(name)) > 1:
            raise bad(f"{name} is given more than once")
    language = params.get("filter-lang", "cql2-text")
    if language not in ("cql2-text", "cql2-json"):
        raise bad("filter-lang must be cql2-text or cql2-json")
    tree = None
    if (text := params.get("filter")) is not None:
        try:
            tree = parse(text, language)
        except FilterError as exc:
            raise bad(str(exc)) from None
    resulttype = params.get("resulttype", "results")
    if resulttype not in ("results", "hits"):
        raise bad("resulttype must be results or hits")
    return ItemsQuery(
        format=response_format(params, accept),
        limit=integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=integer(params, "offset", 0, 0, MAX_OFFSET, clamp=False),
        crs=output_crs(params, layer),
        bbox=bbox(params, layer),
        datetime=datetime_range(params, layer),
        filter=tree,
        filter_srid=crs_srid(params.get("filter-crs", CRS84), "filter-crs"),
        sortby=sortby(params.get("sortby"), by_name, layer.id_field),
        properties=fields_list(params.get("properties"), by_name, "properties"),
        skip_geometry=boolean(params, "skipGeometry"),
        hits_only=resulttype == "hits",
        equals={n: typed(params[n], by_name[n]) for n in params.keys() if n in by_name},
    )
