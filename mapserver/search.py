"""``/api/search``: places by name from the gazetteer (named features of the catalogue's
layers, streets from their assets, postcodes from a postcode layer when the council loads
one), British National Grid references ("SJ 89 90", "389000, 390000") and
latitude/longitude ("53.41, -2.15"). Names that rank the same come nearest ``near`` (the
map's centre) first."""

import re
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pyproj import CRS, Transformer
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from layers.catalogue import Catalogue
from layers.model import Layer
from mapserver.access import principal
from mapserver.replicas import read_engine

router = APIRouter(tags=["search"])

# The 500 km and 100 km letters of the OS National Grid (no I), row by row from the north.
LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
GRID_REF = re.compile(r"^([HJNOST])([A-HJ-Z])\s*(\d*)(?:\s+(\d+))?$")
TWO_NUMBERS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)\s*$")
# A full UK postcode, with or without its space ("SK13XE" is looked up as "SK1 3XE").
POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})$", re.IGNORECASE)
MAX_QUERY = 100

SEARCH = """
SELECT label, kind, layer, ST_X(geom) AS lon, ST_Y(geom) AS lat,
       CASE WHEN GeometryType(bbox) = 'POLYGON' THEN
            ARRAY[ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), ST_YMax(bbox)] END AS bbox
FROM app.gazetteer
WHERE layer = ANY(:layers)
  AND (lower(label) LIKE :contains ESCAPE '\\' OR word_similarity(:query, lower(label)) > 0.45)
ORDER BY lower(label) LIKE :starts ESCAPE '\\' DESC, word_similarity(:query, lower(label)) DESC,
         lower(label),
         ST_Distance(geom::geography,
                     ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326)
                     ::geography) NULLS LAST,
         label
LIMIT :limit
"""


@lru_cache(maxsize=1)
def _bng_to_lonlat() -> Transformer:
    return Transformer.from_crs(27700, 4326, always_xy=True)


def grid_reference(query: str) -> tuple[float, float] | None:
    """Easting and northing (metres, the square's south-west corner) of an OS grid ref."""
    match = GRID_REF.match(query.upper().strip())
    if not match:
        return None
    first, second, digits, more = match.groups()
    digits = digits + (more or "")
    if len(digits) % 2 or len(digits) > 10:
        return None
    i1, i2 = LETTERS.index(first), LETTERS.index(second)
    east = ((i1 - 2) % 5) * 5 + i2 % 5
    north = (19 - (i1 // 5) * 5) - i2 // 5
    half = len(digits) // 2
    scale = 10 ** (5 - half)
    easting = east * 100_000 + int(digits[:half] or 0) * scale
    northing = north * 100_000 + int(digits[half:] or 0) * scale
    return float(easting), float(northing)


def coordinates(query: str) -> list[dict[str, Any]]:
    """The places a query names by coordinates, most likely first."""
    found = []
    if (bng := grid_reference(query)) is not None:
        lon, lat = _bng_to_lonlat().transform(*bng)
        found.append({"label": f"{query.upper().strip()} (grid reference)", "lon": lon, "lat": lat})
    elif match := TWO_NUMBERS.match(query):
        a, b = float(match.group(1)), float(match.group(2))
        if 0 <= a <= 700_000 and 0 <= b <= 1_300_000 and max(a, b) > 1000:
            lon, lat = _bng_to_lonlat().transform(a, b)
            found.append({"label": f"{a:.0f}, {b:.0f} (easting, northing)", "lon": lon, "lat": lat})
        elif 49 <= a <= 61 and -9 <= b <= 2:
            found.append({"label": f"{a}, {b} (latitude, longitude)", "lon": b, "lat": a})
        elif 49 <= b <= 61 and -9 <= a <= 2:
            found.append({"label": f"{b}, {a} (latitude, longitude)", "lon": a, "lat": b})
    return [dict(place, kind="Coordinates", layer=None, bbox=None) for place in found]


def name_query(query: str) -> str:
    """The text looked up in the gazetteer: postcodes written with their space."""
    if match := POSTCODE.match(query):
        return f"{match.group(1)} {match.group(2)}".lower()
    return query.lower()


def near_point(near: str | None) -> tuple[float | None, float | None]:
    """``lon,lat`` of the map's centre (None, None without one); a 422 when malformed."""
    if near is None:
        return None, None
    match = TWO_NUMBERS.match(near)
    lon, lat = (float(match.group(1)), float(match.group(2))) if match else (999.0, 999.0)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise RequestValidationError(
            [{"loc": ("query", "near"), "msg": "near must be lon,lat in degrees", "type": "value"}]
        )
    return lon, lat


def _like(query: str) -> str:
    return query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@router.get("/api/search", summary="Find a place by name, grid reference or lat/lon")
def search(
    request: Request,
    q: str = Query(..., min_length=1, max_length=MAX_QUERY, description="What to look for."),
    limit: int = Query(10, ge=1, le=50),
    near: str | None = Query(
        None, description="lon,lat (CRS84): among equal names, the nearest first"
    ),
) -> JSONResponse:
    query = q.strip()
    lon, lat = near_point(near)
    if "\x00" in query:
        return JSONResponse(
            {"code": "InvalidParameterValue", "description": "q cannot contain NUL characters"},
            status_code=400,
        )
    results = coordinates(query)
    who = principal(request)
    readable = [
        layer.id for layer in request.app.state.catalogue.layers.values() if who.can_read(layer)
    ]
    if len(query) >= 2:
        with read_engine(request).connect() as conn:
            results += places(conn, readable, query, limit, lon, lat)
    return JSONResponse({"query": query, "results": results[:limit]})


def places(
    conn: Connection,
    layers: list[str],
    query: str,
    limit: int,
    lon: float | None = None,
    lat: float | None = None,
) -> list[dict[str, Any]]:
    """Gazetteer entries of these layers matching ``query``, best first; equal names
    nearest (lon, lat) first when it is given."""
    name = name_query(query)
    rows = conn.execute(
        text(SEARCH),
        {
            "layers": layers,
            "query": name,
            "contains": f"%{_like(name)}%",
            "starts": f"{_like(name)}%",
            "limit": limit,
            "lon": lon,
            "lat": lat,
        },
    ).mappings()
    return [dict(row) for row in rows]


@lru_cache(maxsize=8)
def _area_of_use(srid: int) -> tuple[float, float, float, float]:
    """Where a CRS is valid (west, south, east, north in degrees): outside it a transform
    can fail ("outside of projection domain"), and no feature stored in it lies there."""
    area = CRS.from_epsg(srid).area_of_use
    return area.bounds if area else (-180.0, -90.0, 180.0, 90.0)


def locate_point(engine: Engine, catalogue: Catalogue, lon: float, lat: float) -> dict[str, Any]:
    """Is (lon, lat) inside the council and, if not, which neighbouring council is it in:
    ``{"inside", "council", "message"}`` (also used by fault reports)."""
    with engine.connect() as conn:
        return place_in_council(conn, catalogue, lon, lat)


def _at(layer: Layer, lon: float, lat: float) -> str:
    """SQL: the features of ``layer`` at (``:lon``, ``:lat``). Inside the area of the
    layer's CRS the point is transformed (the spatial index serves, and one point is
    transformed rather than every polygon); elsewhere, where that transform can fail, the
    features are compared in longitude/latitude."""
    point = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    west, south, east, north = _area_of_use(layer.srid)
    if west <= lon <= east and south <= lat <= north:
        return f"ST_Intersects(geom, ST_Transform({point}, {layer.srid}))"
    return f"ST_Intersects(ST_Transform(geom, 4326), {point})"


def place_in_council(
    conn: Connection, catalogue: Catalogue, lon: float, lat: float
) -> dict[str, Any]:
    """:func:`locate_point` on an open connection."""
    council = catalogue.council
    boundary = catalogue.layers[council.boundary_layer]
    where = {"lon": lon, "lat": lat}
    inside = conn.execute(
        text(
            f'SELECT EXISTS (SELECT 1 FROM layers."{boundary.table_name}"'
            f" WHERE {_at(boundary, lon, lat)})"
        ),
        where,
    ).scalar()
    neighbour = None
    if not inside and council.neighbours_layer and council.neighbour_name_field:
        layer = catalogue.layers[council.neighbours_layer]
        neighbour = conn.execute(
            text(
                f'SELECT "{council.neighbour_name_field}" FROM layers."{layer.table_name}"'
                f" WHERE {_at(layer, lon, lat)} LIMIT 1"
            ),
            where,
        ).scalar()
    if inside:
        message = f"Inside {council.name}."
    elif neighbour:
        message = f"This place is outside {council.short_name}: it is in {neighbour}."
    else:
        message = f"This place is outside {council.short_name}."
    answer = council.name if inside else neighbour
    return {"inside": bool(inside), "council": answer, "message": message}


@router.get("/api/locate", summary="Is a point inside the council, and if not, whose is it")
def locate(
    request: Request,
    lon: float = Query(..., ge=-180, le=180),
    lat: float = Query(..., ge=-90, le=90),
) -> JSONResponse:
    state = request.app.state
    return JSONResponse(locate_point(read_engine(request), state.catalogue, lon, lat))
