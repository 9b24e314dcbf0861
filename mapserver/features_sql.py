"""The SQL of the features endpoints: PostgreSQL builds each GeoJSON feature itself, so
Python only joins text. Filters are SQLAlchemy expressions (bound parameters only)."""

import math
from functools import lru_cache

import numpy as np
import sqlalchemy as sa
from geoalchemy2 import functions as gf
from pyproj import CRS, Transformer

from layers.model import Layer, LayerField
from layers.tables import layer_table
from mapserver.cql import Translator, to_sql
from mapserver.features_query import BBox, ItemsQuery, OutputCrs

JSON_PAIRS = 50  # json_build_object takes at most 100 arguments
ITEM_STATEMENTS = 1024  # field lists come from clients: the cache starts over past this
_tables: dict[str, tuple[Layer, sa.Table]] = {}
_items: dict[tuple[str, tuple[str, ...], OutputCrs, bool], tuple[Layer, sa.Select]] = {}


def table_of(layer: Layer) -> sa.Table:
    """The layer's SQLAlchemy table, built once per catalogue entry."""
    cached = _tables.get(layer.id)
    if cached is None or cached[0] is not layer:
        cached = _tables[layer.id] = (layer, layer_table(layer))
    return cached[1]


@lru_cache(maxsize=32)
def _transformer(source: int, target: int) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(source), CRS.from_epsg(target), always_xy=True)


def geometry_json(table: sa.Table, layer: Layer, crs: OutputCrs) -> sa.ColumnElement:
    geom = table.c.geom if crs.srid == layer.srid else gf.ST_Transform(table.c.geom, crs.srid)
    if crs.lat_lon:
        geom = gf.ST_FlipCoordinates(geom)
    digits = 7 if CRS.from_epsg(crs.srid).is_geographic else 2
    return sa.cast(gf.ST_AsGeoJSON(geom, digits), sa.JSON)


def properties_json(table: sa.Table, names: list[str]) -> sa.ColumnElement:
    if not names:
        return sa.func.json_build_object()
    groups = [names[i : i + JSON_PAIRS] for i in range(0, len(names), JSON_PAIRS)]
    built = [
        sa.func.jsonb_build_object(*[a for n in group for a in (sa.literal(n), table.c[n])])
        for group in groups
    ]
    if len(built) == 1:
        return sa.func.json_build_object(*[a for n in names for a in (sa.literal(n), table.c[n])])
    combined = built[0]
    for part in built[1:]:
        combined = combined.op("||")(part)
    return combined


def feature_text(
    table: sa.Table, layer: Layer, names: list[str], crs: OutputCrs, skip_geometry: bool
) -> sa.ColumnElement:
    geometry = sa.null() if skip_geometry else geometry_json(table, layer, crs)
    feature = sa.func.json_build_object(
        sa.literal("type"), sa.literal("Feature"),
        sa.literal("id"), table.c[layer.id_field],
        sa.literal("geometry"), geometry,
        sa.literal("properties"), properties_json(table, names),
    )  # fmt: skip
    return sa.cast(feature, sa.Text)


def _side_points(
    transformer: Transformer, minx: float, miny: float, maxx: float, maxy: float
) -> int:
    """Vertices per side so that each chord is about 10 m long (at most 1,024)."""
    xs, ys = transformer.transform([minx, maxx, maxx], [miny, miny, maxy])
    longest = max(
        math.dist((xs[0], ys[0]), (xs[1], ys[1])), math.dist((xs[1], ys[1]), (xs[2], ys[2]))
    )
    return int(min(max(math.ceil(longest / 10), 8), 1024))


def bbox_condition(table: sa.Table, layer: Layer, box: BBox) -> sa.ColumnElement:
    """The bbox as a polygon in the storage CRS, so the index does all the work and no row
    is reprojected. Its sides follow the meridians and parallels of the requested CRS: with
    a vertex every 10 m or so they stay within micrometres of them (a parallel's curve in
    British National Grid bends about 3 µm over 10 m)."""
    minx, miny, maxx, maxy = box.coords
    if box.srid == layer.srid:
        return gf.ST_Intersects(table.c.geom, gf.ST_MakeEnvelope(minx, miny, maxx, maxy, box.srid))
    transformer = _transformer(box.srid, layer.srid)
    steps = np.linspace(0.0, 1.0, _side_points(transformer, minx, miny, maxx, maxy) + 1)[:-1]
    xs = np.concatenate(
        [
            minx + (maxx - minx) * steps,
            np.full_like(steps, maxx),
            maxx - (maxx - minx) * steps,
            np.full_like(steps, minx),
        ]
    )
    ys = np.concatenate([np.full_like(steps, miny), miny + (maxy - miny) * steps,
                         np.full_like(steps, maxy), maxy - (maxy - miny) * steps])  # fmt: skip
    ex, ey = transformer.transform(xs, ys)
    ring = ", ".join(f"{x:.4f} {y:.4f}" for x, y in zip(ex, ey, strict=True))
    polygon = sa.func.ST_GeomFromText(f"POLYGON(({ring}, {ex[0]:.4f} {ey[0]:.4f}))", layer.srid)
    return gf.ST_Intersects(table.c.geom, polygon)


def conditions(
    table: sa.Table, layer: Layer, query: ItemsQuery, visible: list[LayerField]
) -> list[sa.ColumnElement]:
    found: list[sa.ColumnElement] = []
    if query.bbox:
        found.append(bbox_condition(table, layer, query.bbox))
    if query.datetime and layer.time_field:
        column = table.c[layer.time_field]
        start, end = query.datetime
        if start is not None:
            found.append(column >= start)
        if end is not None:
            found.append(column <= end)
    for name, value in query.equals.items():
        found.append(table.c[name] == value)
    if query.filter is not None:
        columns = {f.name: table.c[f.name] for f in visible}
        columns[layer.id_field] = table.c[layer.id_field]
        translator = Translator(columns, table.c.geom, layer.srid, query.filter_srid)
        found.append(to_sql(query.filter, translator))
    return found


def items_statement(
    table: sa.Table, layer: Layer, query: ItemsQuery, visible: list[LayerField]
) -> sa.Select:
    """One page, plus one row more to know whether there is a next page."""
    names = query.properties if query.properties is not None else [f.name for f in visible]
    order = [
        table.c[name].desc() if descending else table.c[name].asc()
        for name, descending in query.sortby
    ]
    return (
        sa.select(feature_text(table, layer, names, query.crs, query.skip_geometry))
        .where(*conditions(table, layer, query, visible))
        .order_by(*order, table.c[layer.id_field])
        .limit(query.limit + 1)
        .offset(query.offset)
    )


def count_statement(
    table: sa.Table, layer: Layer, query: ItemsQuery, visible: list[LayerField]
) -> sa.Select:
    return (
        sa.select(sa.func.count())
        .select_from(table)
        .where(*conditions(table, layer, query, visible))
    )


def item_statement(layer: Layer, names: list[str], crs: OutputCrs, skip: bool) -> sa.Select:
    """One feature, its id the parameter ``fid``. Built once per layer, field list, CRS and
    skipGeometry, as building the expression costs more CPU than PostgreSQL's answer."""
    key = (layer.id, tuple(names), crs, skip)
    cached = _items.get(key)
    if cached is None or cached[0] is not layer:
        if len(_items) >= ITEM_STATEMENTS:
            _items.clear()
        table = table_of(layer)
        statement = sa.select(feature_text(table, layer, names, crs, skip)).where(
            table.c[layer.id_field] == sa.bindparam("fid", type_=sa.BigInteger)
        )
        cached = _items[key] = (layer, statement)
    return cached[1]
