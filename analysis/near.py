"""Features near a location: what of each layer lies within a distance of a point, line
or polygon. Useful on its own to emergency planners (what is near this incident?)."""

import json
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import functions as gf
from sqlalchemy.engine import Engine

from layers.catalogue import Catalogue
from mapserver.access import Principal
from mapserver.features_query import CRS84, OutputCrs
from mapserver.features_sql import feature_text, table_of

MAX_DISTANCE_M = 50_000
MAX_FEATURES_PER_LAYER = 5_000
ALLOWED_GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                      "MultiPolygon"}  # fmt: skip


class InputError(ValueError):
    """An input the client must correct (a 400)."""


def _geometry(value: Any) -> dict:  # noqa: ANN401
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ALLOWED_GEOMETRIES:
        raise InputError("geometry must be a GeoJSON point, line or polygon (CRS84)")
    return value


def features_near(
    engine: Engine,
    catalogue: Catalogue,
    who: Principal,
    layer_ids: list[str],
    geometry: Any,  # noqa: ANN401 (GeoJSON from the client)
    distance: float,
) -> dict[str, Any]:
    """Features of each layer within ``distance`` metres of ``geometry``, grouped by layer;
    layers the principal may not read are reported unknown, like layers that do not exist."""
    if not isinstance(layer_ids, list) or not layer_ids:
        raise InputError("layers must be a non-empty list of collection ids")
    if not isinstance(distance, int | float) or not 0 <= distance <= MAX_DISTANCE_M:
        raise InputError(f"distance must be between 0 and {MAX_DISTANCE_M} metres")
    shape = _geometry(geometry)
    layers = []
    for layer_id in layer_ids:
        layer = catalogue.layers.get(str(layer_id))
        if layer is None or not who.can_read(layer):
            raise InputError(f"unknown layer {layer_id!r}")
        layers.append(layer)
    crs = OutputCrs(CRS84, 4326, lat_lon=False)
    results: dict[str, Any] = {}
    with engine.connect() as conn:
        valid = conn.execute(
            sa.select(gf.ST_IsValid(gf.ST_GeomFromGeoJSON(json.dumps(shape))))
        ).scalar()
        if not valid:
            raise InputError("geometry is not valid (self-intersecting or unclosed)")
        for layer in layers:
            table = table_of(layer)
            site = gf.ST_Transform(
                gf.ST_SetSRID(gf.ST_GeomFromGeoJSON(json.dumps(shape)), 4326), layer.srid
            )
            names = [f.name for f in who.fields(layer)]
            rows = conn.execute(
                sa.select(
                    feature_text(table, layer, names, crs, False),
                    gf.ST_Distance(table.c.geom, site),
                )
                .where(gf.ST_DWithin(table.c.geom, site, distance))
                .order_by(gf.ST_Distance(table.c.geom, site), table.c[layer.id_field])
                .limit(MAX_FEATURES_PER_LAYER + 1)
            ).all()
            features = []
            for text, metres in rows[:MAX_FEATURES_PER_LAYER]:
                feature = json.loads(text)
                feature["properties"]["distance_m"] = round(metres, 1)
                features.append(feature)
            results[layer.id] = {
                "title": layer.title,
                "count": len(features),
                "truncated": len(rows) > MAX_FEATURES_PER_LAYER,
                "features": features,
            }
    return {"distance_m": distance, "layers": results}
