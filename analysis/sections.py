"""What the site analyses have in common: for one layer, the features within a distance of
a site with their distance and overlap, and the share of the site they cover. One result
shape ("sections" of features) serves the page, the exports and the PDF.

Areas are planar, in the layer's CRS (British National Grid: within 0.1 % of the ground
area across a borough), and overlaps are unioned first, so features that overlap each
other (zone 2 includes zone 3) are not counted twice in a share.
"""

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import functions as gf
from sqlalchemy.engine import Connection

from analysis.near import MAX_FEATURES_PER_LAYER
from layers.model import Layer
from mapserver.access import Principal
from mapserver.features_query import CRS84, OutputCrs
from mapserver.features_sql import feature_text, table_of

LONLAT = OutputCrs(CRS84, 4326, lat_lon=False)
# How an analysis reports progress (percent, message) to its job; nothing outside a job.
Progress = Callable[[int, str], None]


def no_progress(percent: int, message: str) -> None:
    pass


def is_area(layer: Layer) -> bool:
    return layer.geometry.endswith("Polygon")


def fields_of(layer: Layer, who: Principal) -> list[dict[str, str]]:
    return [{"name": f.name, "label": f.label} for f in who.fields(layer)]


def features_within(
    conn: Connection,
    layer: Layer,
    who: Principal,
    zone: sa.ColumnElement,
    metres: float,
    site_area: float | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Features within ``metres`` of ``zone`` (a geometry in any CRS), nearest first, each
    with ``distance_m`` and, for area layers and an area zone, ``overlap_m2`` and ``share``
    of the zone; at most the per-layer limit of them. Second value: how many there are."""
    table = table_of(layer)
    zone = gf.ST_Transform(zone, layer.srid)
    distance = gf.ST_Distance(table.c.geom, zone)
    overlap = gf.ST_Area(gf.ST_Intersection(table.c.geom, zone)) if is_area(layer) else sa.null()
    rows = conn.execute(
        sa.select(
            feature_text(table, layer, [f.name for f in who.fields(layer)], LONLAT, False),
            distance,
            overlap,
        )
        .where(gf.ST_DWithin(table.c.geom, zone, metres))
        .order_by(distance, table.c[layer.id_field])
        .limit(MAX_FEATURES_PER_LAYER + 1)
    ).all()
    features = []
    for text, metres_away, overlap_m2 in rows[:MAX_FEATURES_PER_LAYER]:
        feature = json.loads(text)
        extra: dict[str, Any] = {"distance_m": round(metres_away, 1)}
        if overlap_m2 is not None and site_area:
            extra.update(overlap_m2=round(overlap_m2, 1), share=round(overlap_m2 / site_area, 4))
        feature["properties"].update(extra)
        features.append(feature)
    total = len(features)
    if len(rows) > MAX_FEATURES_PER_LAYER:
        total = conn.execute(
            sa.select(sa.func.count()).where(gf.ST_DWithin(table.c.geom, zone, metres))
        ).scalar_one()
    return features, total


def covered(
    conn: Connection, layer: Layer, zone: sa.ColumnElement, group_by: str | None = None
) -> dict[Any, float]:
    """Area of ``zone`` that the layer's features cover (m²), overall (key None) or for
    each value of ``group_by``."""
    table = table_of(layer)
    zone = gf.ST_Transform(zone, layer.srid)
    area = gf.ST_Area(gf.ST_Union(gf.ST_Intersection(table.c.geom, zone)))
    key = table.c[group_by] if group_by else sa.literal(None)
    query = sa.select(key, area).where(gf.ST_Intersects(table.c.geom, zone))
    if group_by:
        query = query.group_by(key).order_by(key)
    return {value: float(m2 or 0) for value, m2 in conn.execute(query).all()}


def section(layer: Layer, who: Principal, features: list[dict], total: int) -> dict[str, Any]:
    """A layer's part of a result; ``truncated`` when only the first features are listed."""
    return {
        "layer": layer.id,
        "title": layer.title,
        "geometry": layer.geometry,
        "synthetic": layer.synthetic,
        "attribution": layer.attribution,
        "fields": fields_of(layer, who),
        "count": total,
        "truncated": total > len(features),
        "features": features,
    }
