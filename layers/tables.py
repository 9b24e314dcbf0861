"""The PostGIS table of a layer, derived from its catalogue entry: as SQL (for the
loaders and the start-up, through psycopg2 alone) and as an SQLAlchemy table (for the
query builders; GeoAlchemy2 and SQLAlchemy are imported only then)."""

from typing import TYPE_CHECKING

from layers.model import FieldType, Layer
from mapserver.database import connected

if TYPE_CHECKING:
    import sqlalchemy as sa

    from mapserver.database import Connects

LAYER_SCHEMA = "layers"

# Each field type as a PostgreSQL column type (what SQLAlchemy's Text, BigInteger, Float,
# Boolean, Date and DateTime make).
COLUMN_SQL: dict[FieldType, str] = {
    "string": "TEXT",
    "integer": "BIGINT",
    "number": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP WITHOUT TIME ZONE",
}


def create_table(layer: Layer, name: str | None = None, *, primary_key: bool = True) -> str:
    """``CREATE TABLE`` for ``layer``; ``name`` gives a staging copy of the same shape.

    Indexes are added by the loader after the bulk copy, where they are cheaper to build.
    """
    fields = [f'"{f.name}" {COLUMN_SQL[f.type]}' for f in layer.fields]
    key = " PRIMARY KEY" if primary_key else ""
    columns = ", ".join([f'"{layer.id_field}" bigint NOT NULL{key}', *fields])
    geometry = f"geometry({layer.geometry.upper()}, {layer.srid})"
    table = f'{LAYER_SCHEMA}."{name or layer.table_name}"'
    return f"CREATE TABLE {table} ({columns}, geom {geometry} NOT NULL)"


def layer_table(layer: Layer, name: str | None = None) -> "sa.Table":
    """The table for ``layer`` as SQLAlchemy describes it (for building queries)."""
    import sqlalchemy as sa
    from geoalchemy2 import Geometry  # a tenth of a second, which `mapserver load` skips

    types = {"string": sa.Text, "integer": sa.BigInteger, "number": sa.Float,
             "boolean": sa.Boolean, "date": sa.Date, "datetime": sa.DateTime}  # fmt: skip
    columns = [
        sa.Column(layer.id_field, sa.BigInteger, primary_key=True, autoincrement=False),
        *(sa.Column(f.name, types[f.type]) for f in layer.fields),
        sa.Column(
            "geom",
            Geometry(layer.geometry.upper(), srid=layer.srid, spatial_index=False),
            nullable=False,
        ),
    ]
    return sa.Table(name or layer.table_name, sa.MetaData(), *columns, schema=LAYER_SCHEMA)


def ensure_layer_tables(db: "Connects", layers: list[Layer]) -> None:
    """Create an empty table for every catalogue layer not loaded yet, so each collection
    answers (with no features) instead of failing before its first load. Managed layers
    are views the migrations make (see reports/), never tables made here."""
    with connected(db) as conn, conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %(schema)s",
            {"schema": LAYER_SCHEMA},
        )
        present = {name for (name,) in cursor.fetchall()}
        for layer in layers:
            if layer.managed or layer.table_name in present:
                continue
            cursor.execute(create_table(layer))
            cursor.execute(
                f'CREATE INDEX "{layer.table_name}_geom_idx"'
                f' ON {LAYER_SCHEMA}."{layer.table_name}" USING gist (geom)'
            )
