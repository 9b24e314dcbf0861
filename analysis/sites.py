"""Where an analysis looks, from what a client sends: a drawn geometry (GeoJSON, CRS84), a
point on a land parcel (the parcel is the site), or an address found in the gazetteer.

Inputs are checked here with shapely before any job starts, so a bad one is a 400 with a
reason, never a failed job; the site then travels as EWKT in the council's CRS.
"""

import json
from dataclasses import dataclass
from typing import Any

import shapely
import sqlalchemy as sa
from geoalchemy2 import functions as gf
from shapely.geometry import shape
from shapely.validation import explain_validity
from sqlalchemy.engine import Connection

from analysis.near import ALLOWED_GEOMETRIES, InputError
from layers.catalogue import Catalogue
from layers.model import Layer
from mapserver.access import Principal
from mapserver.features_sql import table_of
from mapserver.search import places

MAX_VERTICES = 10_000
MAX_SITE_HA = 500  # a site, not a district: larger ones are what incident reach is for
MAX_ADDRESS = 100
# A generous box around Great Britain (CRS84): anything else is a lon/lat mix-up.
GB = shapely.box(-9.0, 49.0, 2.5, 61.5)


@dataclass(frozen=True)
class Site:
    ewkt: str  # in the council's CRS
    label: str
    kind: str  # "drawn", "parcel" or "address"

    def geometry(self) -> sa.ColumnElement:
        return gf.ST_GeomFromEWKT(self.ewkt)


def parse_geometry(value: Any, *, polygon: bool = False) -> shapely.Geometry:  # noqa: ANN401
    """A GeoJSON geometry (or Feature) in CRS84, valid and inside Great Britain."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ALLOWED_GEOMETRIES:
        raise InputError("geometry must be a GeoJSON point, line or polygon (CRS84)")
    try:
        geom = shape(value)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException):
        raise InputError("geometry is not readable GeoJSON (check its coordinates)") from None
    if geom.is_empty:
        raise InputError("geometry is empty")
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise InputError(f"geometry has more than {MAX_VERTICES} vertices")
    if not geom.is_valid:
        raise InputError(f"geometry is not valid: {explain_validity(geom)}")
    if not GB.contains(geom):
        raise InputError("geometry must be in Great Britain, as longitude, latitude (CRS84)")
    if polygon and geom.geom_type not in ("Polygon", "MultiPolygon", "Point", "MultiPoint"):
        raise InputError("the site must be a polygon (or a point on a land parcel)")
    return geom


def parse_distance(value: Any, name: str, low: float, high: float) -> float:  # noqa: ANN401
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InputError(f"{name} must be a number of metres from {low:g} to {high:g}")
    return float(value)


def parse_layers(value: Any, catalogue: Catalogue, who: Principal) -> list[Layer]:  # noqa: ANN401
    """Readable layers by id; one the caller may not read is as unknown as a missing one."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError("layers must be a non-empty list of collection ids")
    found = []
    for layer_id in dict.fromkeys(value):
        layer = catalogue.layers.get(layer_id)
        if layer is None or not who.can_read(layer):
            raise InputError(f"unknown layer {layer_id!r}")
        found.append(layer)
    return found


def parse_address(value: Any) -> str:  # noqa: ANN401
    if not isinstance(value, str) or not 2 <= len(value.strip()) <= MAX_ADDRESS or "\x00" in value:
        raise InputError(f"address must be text of 2 to {MAX_ADDRESS} characters")
    return value.strip()


def to_ewkt(conn: Connection, geom: shapely.Geometry, srid: int) -> str:
    return conn.execute(
        sa.select(gf.ST_AsEWKT(gf.ST_Transform(gf.ST_GeomFromEWKT(f"SRID=4326;{geom.wkt}"), srid)))
    ).scalar_one()


def address_point(
    conn: Connection, catalogue: Catalogue, who: Principal, address: str
) -> tuple[shapely.Point, str]:
    """The best gazetteer match of an address or place name, as a CRS84 point."""
    readable = [layer.id for layer in catalogue.layers.values() if who.can_read(layer)]
    found = places(conn, readable, address, 1)
    if not found:
        raise InputError(f"no place called {address!r} was found; draw the site instead")
    return shapely.Point(found[0]["lon"], found[0]["lat"]), found[0]["label"]


def parcel_at(
    conn: Connection, catalogue: Catalogue, who: Principal, point: shapely.Geometry, label: str
) -> Site:
    """The land parcel under a point: what "this address" or a click on the map means."""
    layer_id = catalogue.council.parcel_layer
    layer = catalogue.layers.get(layer_id or "")
    if layer is None or not who.can_read(layer):
        raise InputError("no land parcel layer is configured: draw the site as a polygon")
    table = table_of(layer)
    here = gf.ST_GeomFromEWKT(to_ewkt(conn, point, layer.srid))
    row = conn.execute(
        sa.select(gf.ST_AsEWKT(table.c.geom), table.c[layer.id_field])
        .where(gf.ST_Intersects(table.c.geom, here))
        .order_by(gf.ST_Area(table.c.geom))
        .limit(1)
    ).one_or_none()
    if row is None:
        raise InputError(f"no {layer.title.lower()} parcel at {label}; draw the site instead")
    return Site(row[0], f"{layer.title} parcel {row[1]} at {label}", "parcel")


def resolve_site(
    conn: Connection,
    catalogue: Catalogue,
    who: Principal,
    data: dict[str, Any],
    *,
    polygon: bool,
) -> Site:
    """The site of an analysis from its ``geometry`` or ``address`` input. With ``polygon``,
    a point stands for the land parcel under it."""
    srid = catalogue.layers[catalogue.council.boundary_layer].srid
    if data.get("geometry") is not None:
        geom = parse_geometry(data["geometry"], polygon=polygon)
        if polygon and geom.geom_type in ("Point", "MultiPoint"):
            return parcel_at(conn, catalogue, who, geom, "the point chosen")
        return Site(to_ewkt(conn, geom, srid), "the area drawn", "drawn")
    if data.get("address") is not None:
        address = parse_address(data["address"])
        point, label = address_point(conn, catalogue, who, address)
        if polygon:
            return parcel_at(conn, catalogue, who, point, label)
        return Site(to_ewkt(conn, point, srid), label, "address")
    raise InputError("give the site as geometry (GeoJSON in CRS84) or an address")


def resolve_area_site(
    conn: Connection, catalogue: Catalogue, who: Principal, data: dict[str, Any]
) -> tuple[Site, dict[str, Any]]:
    """A site for the site reports (a polygon, or the parcel under a point or address), no
    larger than ``MAX_SITE_HA``; and its description (:func:`site_geojson`)."""
    site = resolve_site(conn, catalogue, who, data, polygon=True)
    described = site_geojson(conn, site)
    if described["area_m2"] > MAX_SITE_HA * 10_000:
        raise InputError(f"the site is larger than {MAX_SITE_HA} hectares: draw a smaller one")
    return site, described


def site_geojson(conn: Connection, site: Site) -> dict[str, Any]:
    """The site in CRS84, its area (m², in the council's CRS) and its label."""
    text, area = conn.execute(
        sa.select(
            gf.ST_AsGeoJSON(gf.ST_Transform(site.geometry(), 4326), 7), gf.ST_Area(site.geometry())
        )
    ).one()
    return {"label": site.label, "kind": site.kind, "area_m2": round(area, 1),
            "geometry": json.loads(text)}  # fmt: skip
