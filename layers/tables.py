"""The PostGIS table of a layer, derived from its catalogue entry (GeoAlchemy2)."""

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.engine import Engine

from layers.model import FieldType, Layer

LAYER_SCHEMA = "layers"

COLUMN_TYPES: dict[FieldType, type[sa.types.TypeEngine]] = {
    "string": sa.Text,
    "integer": sa.BigInteger,
    "number": sa.Float,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "datetime": sa.DateTime,
}


def layer_table(layer: Layer, name: str | None = None) -> sa.Table:
    """The table for ``layer``; ``name`` gives a staging copy of the same shape.

    Indexes are added by the loader after the bulk copy, where they are cheaper to build.
    """
    columns = [
        sa.Column(layer.id_field, sa.BigInteger, primary_key=True, autoincrement=False),
        *(sa.Column(f.name, COLUMN_TYPES[f.type]) for f in layer.fields),
        sa.Column(
            "geom",
            Geometry(layer.geometry.upper(), srid=layer.srid, spatial_index=False),
            nullable=False,
        ),
    ]
    return sa.Table(name or layer.table_name, sa.MetaData(), *columns, schema=LAYER_SCHEMA)


def ensure_layer_tables(engine: Engine, layers: list[Layer]) -> None:
    """Create an empty table for every catalogue layer not loaded yet, so each collection
    answers (with no features) instead of failing before its first load. Managed layers
    are views the migrations make (see reports/), never tables made here."""
    with engine.begin() as conn:
        for layer in layers:
            if layer.managed:
                continue
            table = layer_table(layer)
            if not sa.inspect(conn).has_table(table.name, schema=LAYER_SCHEMA):
                table.create(conn)
                conn.execute(
                    sa.text(
                        f'CREATE INDEX "{table.name}_geom_idx" ON {LAYER_SCHEMA}."{table.name}"'
                        " USING gist (geom)"
                    )
                )
