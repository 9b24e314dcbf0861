"""The SQL of the features endpoints: PostgreSQL builds each GeoJSON feature itself, so
Python only joins text. Filters are SQLAlchemy expressions (bound parameters only)."""

from functools import lru_cache

import sqlalchemy as sa
from geoalchemy2 import functions as gf
from pyproj import CRS, Transformer

from layers.model import Layer, LayerField
from layers.tables import layer_table
from mapserver.cql import Translator, to_sql
from mapserver.features_query import BBox, ItemsQuery, OutputCrs

JSON_PAIRS = 50  # json_build_object takes at most 100 arguments
_tables: dict[tuple[str, str], sa.Table] = {}


def table_of(layer: Layer) -> sa.Table:
    key = (layer.id, layer.model_dump_json())
    if key not in _tables:
        _tables[key] = layer_table(layer)
    return _tables[key]


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


def bbox_condition(table: sa.Table, layer: Layer, box: BBox) -> sa.ColumnElement:
    """Exact in the bbox's own CRS; an enclosing box in the storage CRS uses the index."""
    minx, miny, maxx, maxy = box.coords
    if box.srid == layer.srid:
        return gf.ST_Intersects(table.c.geom, gf.ST_MakeEnvelope(minx, miny, maxx, maxy, box.srid))
    enclosing = _transformer(box.srid, layer.srid).transform_bounds(
        minx, miny, maxx, maxy, densify_pts=21
    )
    return sa.and_(
        table.c.geom.op("&&")(gf.ST_MakeEnvelope(*enclosing, layer.srid)),
        gf.ST_Intersects(
            gf.ST_Transform(table.c.geom, box.srid),
            gf.ST_MakeEnvelope(minx, miny, maxx, maxy, box.srid),
        ),
    )


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


def item_statement(
    table: sa.Table, layer: Layer, fid: int, names: list[str], crs: OutputCrs, skip: bool
) -> sa.Select:
    return sa.select(feature_text(table, layer, names, crs, skip)).where(
        table.c[layer.id_field] == fid
    )
