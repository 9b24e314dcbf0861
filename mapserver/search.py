"""``/api/search``: places by name from the gazetteer (named features of the catalogue's
layers, streets from their assets), British National Grid references ("SJ 89 90",
"389000, 390000") and latitude/longitude ("53.41, -2.15")."""

import re
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pyproj import Transformer
from sqlalchemy import text

from mapserver.access import principal
from mapserver.replicas import read_engine

router = APIRouter(tags=["search"])

# The 500 km and 100 km letters of the OS National Grid (no I), row by row from the north.
LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
GRID_REF = re.compile(r"^([HJNOST])([A-HJ-Z])\s*(\d*)(?:\s+(\d+))?$")
TWO_NUMBERS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)\s*$")
MAX_QUERY = 100

SEARCH = """
SELECT label, kind, layer, ST_X(geom) AS lon, ST_Y(geom) AS lat,
       CASE WHEN GeometryType(bbox) = 'POLYGON' THEN
            ARRAY[ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), ST_YMax(bbox)] END AS bbox
FROM app.gazetteer
WHERE layer = ANY(:layers)
  AND (lower(label) LIKE :contains ESCAPE '\\' OR word_similarity(:query, lower(label)) > 0.45)
ORDER BY lower(label) LIKE :starts ESCAPE '\\' DESC, word_similarity(:query, lower(label)) DESC,
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


def _like(query: str) -> str:
    return query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@router.get("/api/search", summary="Find a place by name, grid reference or lat/lon")
def search(
    request: Request,
    q: str = Query(..., min_length=1, max_length=MAX_QUERY, description="What to look for."),
    limit: int = Query(10, ge=1, le=50),
) -> JSONResponse:
    query = q.strip()
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
            rows = conn.execute(
                text(SEARCH),
                {
                    "layers": readable,
                    "query": query.lower(),
                    "contains": f"%{_like(query)}%",
                    "starts": f"{_like(query)}%",
                    "limit": limit,
                },
            ).mappings()
            results += [dict(row) for row in rows]
    return JSONResponse({"query": query, "results": results[:limit]})


@router.get("/api/locate", summary="Is a point inside the council, and if not, whose is it")
def locate(
    request: Request,
    lon: float = Query(..., ge=-180, le=180),
    lat: float = Query(..., ge=-90, le=90),
) -> JSONResponse:
    catalogue = request.app.state.catalogue
    council = catalogue.council
    boundary = catalogue.layers[council.boundary_layer]
    # Compared in longitude/latitude: a point anywhere on Earth is valid here, and British
    # National Grid cannot represent them all.
    point = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    with read_engine(request).connect() as conn:
        inside = conn.execute(
            text(
                f'SELECT EXISTS (SELECT 1 FROM layers."{boundary.table_name}"'
                f" WHERE ST_Intersects(ST_Transform(geom, 4326), {point}))"
            ),
            {"lon": lon, "lat": lat},
        ).scalar()
        neighbour = None
        if not inside and council.neighbours_layer and council.neighbour_name_field:
            layer = catalogue.layers[council.neighbours_layer]
            neighbour = conn.execute(
                text(
                    f'SELECT "{council.neighbour_name_field}" FROM layers."{layer.table_name}"'
                    f" WHERE ST_Intersects(ST_Transform(geom, 4326), {point}) LIMIT 1"
                ),
                {"lon": lon, "lat": lat},
            ).scalar()
    if inside:
        message = f"Inside {council.name}."
    elif neighbour:
        message = f"This place is outside {council.short_name}: it is in {neighbour}."
    else:
        message = f"This place is outside {council.short_name}."
    return JSONResponse(
        {
            "inside": bool(inside),
            "council": council.name if inside else neighbour,
            "message": message,
        }
    )
