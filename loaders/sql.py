"""Every SQL statement of the loaders. Identifiers come from the validated catalogue
(lower-case, no quotes possible); values always go as parameters."""

from sqlalchemy.dialects import postgresql

from layers.model import Layer
from layers.tables import COLUMN_TYPES, LAYER_SCHEMA

# Serialises loads of one layer across processes (two workers starting, cron + a person).
LOCK_LAYER = "SELECT pg_advisory_xact_lock(hashtext('mapserver.load.' || :layer))"
TRY_LOCK_LAYER = "SELECT pg_try_advisory_xact_lock(hashtext('mapserver.load.' || :layer))"
LOCK_SAMPLES = "SELECT pg_advisory_lock(hashtext('mapserver.samples'))"
UNLOCK_SAMPLES = "SELECT pg_advisory_unlock(hashtext('mapserver.samples'))"

# A 'loading' row whose layer lock is free belongs to a load that was killed.
MARK_INTERRUPTED = """
UPDATE app.layer_versions
SET status = 'failed', finished_at = now(), message = 'interrupted: the load did not finish'
WHERE layer = :layer AND status = 'loading'
"""

NEXT_VERSION = """
INSERT INTO app.layer_versions
    (layer, version, status, source_uri, sha256, crs_in, crs_out, run_by)
SELECT :layer, coalesce(max(version), 0) + 1, 'loading', :source_uri, :sha256, :crs_in,
       :crs_out, :run_by
FROM app.layer_versions WHERE layer = :layer
RETURNING id, version
"""

LIVE_VERSIONS = """
SELECT layer, version, rows_loaded, finished_at FROM app.layer_versions WHERE status = 'live'
"""

LIVE_VERSION = """
SELECT id, version, source_uri, sha256, details, finished_at
FROM app.layer_versions WHERE layer = :layer AND status = 'live'
"""

HISTORY = """
SELECT version, status, source_uri, rows_read, rows_loaded, rows_rejected, rows_repaired,
       crs_in, started_at, finished_at, run_by, message
FROM app.layer_versions WHERE layer = :layer ORDER BY version DESC
"""

FAIL_VERSION = """
UPDATE app.layer_versions
SET status = 'failed', finished_at = now(), message = :message, rows_read = :rows_read,
    rows_rejected = :rows_rejected, details = CAST(:details AS jsonb)
WHERE id = :id
"""

RETIRE_PREVIOUS = """
UPDATE app.layer_versions SET status = 'retired' WHERE layer = :layer AND status = 'previous'
"""
DEMOTE_LIVE = """
UPDATE app.layer_versions SET status = 'previous' WHERE layer = :layer AND status = 'live'
"""
PROMOTE = """
UPDATE app.layer_versions
SET status = 'live', finished_at = now(), rows_read = :rows_read, rows_loaded = :rows_loaded,
    rows_rejected = :rows_rejected, rows_repaired = :rows_repaired,
    details = CAST(:details AS jsonb)
WHERE id = :id
"""
# Rollback: live and previous trade places (one row at a time: one live row per layer).
PREVIOUS_ID = "SELECT id FROM app.layer_versions WHERE layer = :layer AND status = 'previous'"
MAKE_LIVE = "UPDATE app.layer_versions SET status = 'live' WHERE id = :id RETURNING version"


def qualified(table: str) -> str:
    return f'{LAYER_SCHEMA}."{table}"'


def create_staging(table: str, layer: Layer) -> str:
    """The layer's table (as layers.tables.layer_table, without GeoAlchemy2's import) with
    no primary key yet: added after the COPY, as a sort, not row by row."""
    dialect = postgresql.dialect()
    fields = [f'"{f.name}" {COLUMN_TYPES[f.type]().compile(dialect=dialect)}' for f in layer.fields]
    columns = ", ".join([f'"{layer.id_field}" bigint NOT NULL', *fields])
    geometry = f"geometry({layer.geometry.upper()}, {layer.srid})"
    return f"CREATE TABLE {qualified(table)} ({columns}, geom {geometry} NOT NULL)"


def primary_key(table: str, id_field: str) -> str:
    return f'ALTER TABLE {qualified(table)} ADD PRIMARY KEY ("{id_field}")'


def copy_into(table: str, columns: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"COPY {qualified(table)} ({names}) FROM STDIN WITH (FORMAT binary)"


def boundary(table: str) -> str:
    """The council boundary in a layer's CRS, grown by a tolerance in metres."""
    return (
        f"SELECT ST_AsBinary(ST_Buffer(ST_Transform(ST_Union(geom), :srid), :tolerance))"
        f" FROM {qualified(table)}"
    )


def remove_duplicates(table: str, id_field: str, key: str) -> str:
    """Keep the first row of each key; return the others with the row they repeat."""
    return f"""
WITH ranked AS (
    SELECT "{id_field}" AS fid, "{key}"::text AS key,
           first_value("{id_field}") OVER (PARTITION BY "{key}" ORDER BY "{id_field}") AS first
    FROM {qualified(table)} WHERE "{key}" IS NOT NULL
)
DELETE FROM {qualified(table)} t USING ranked r
WHERE t."{id_field}" = r.fid AND r.fid <> r.first
RETURNING r.fid, r.key, r.first
"""


def unique_index(table: str, key: str) -> str:
    return f'CREATE UNIQUE INDEX "{table}_key" ON {qualified(table)} ("{key}")'


def build_indexes(table: str, fields: list[str]) -> list[str]:
    """After the bulk copy, where they are cheaper to build; the primary key covers the id."""
    statements = [f'CREATE INDEX "{table}_geom_idx" ON {qualified(table)} USING gist (geom)']
    for number, name in enumerate(fields):
        # Short names: a table name plus a field name may pass PostgreSQL's 63 characters.
        statements.append(f'CREATE INDEX "{table}_i{number}" ON {qualified(table)} ("{name}")')
    statements.append(f"ANALYZE {qualified(table)}")
    return statements


def derive(target: str, parent: str, columns: list[str], field: str) -> list[str]:
    names = ", ".join(f'"{c}"' for c in columns)
    return [
        f"CREATE TABLE {qualified(target)} AS SELECT {names}, geom FROM {qualified(parent)}"
        f' WHERE "{field}"::text = ANY(CAST(:values AS text[]))',
        f'ALTER TABLE {qualified(target)} ADD PRIMARY KEY ("{columns[0]}")',
        f"ALTER TABLE {qualified(target)} ALTER COLUMN geom SET NOT NULL",
    ]


def drop_table(table: str) -> str:
    return f"DROP TABLE IF EXISTS {qualified(table)}"


# For the load's own transaction: index builds sort in memory, and the commit does not
# wait for the disk (a crash just after it loses this load, never the previous version).
LOAD_SETTINGS = [
    "SET LOCAL maintenance_work_mem = '512MB'",
    "SET LOCAL synchronous_commit = off",
]


def swap(live: str, staging: str, previous: str, retired: str) -> list[str]:
    """Staging becomes live, live becomes previous, previous is parked as retired (dropped
    after the commit): renames only, so the exclusive lock is brief."""
    return [
        "SET LOCAL lock_timeout = '10s'",
        f'ALTER TABLE IF EXISTS {qualified(previous)} RENAME TO "{retired}"',
        f'ALTER TABLE IF EXISTS {qualified(live)} RENAME TO "{previous}"',
        f'ALTER TABLE {qualified(staging)} RENAME TO "{live}"',
    ]


def exchange(live: str, previous: str) -> list[str]:
    """Rollback: the previous table and the live one trade names."""
    parked = f"{live}__parked"
    return [
        "SET LOCAL lock_timeout = '10s'",
        f'ALTER TABLE {qualified(live)} RENAME TO "{parked}"',
        f'ALTER TABLE {qualified(previous)} RENAME TO "{live}"',
        f'ALTER TABLE {qualified(parked)} RENAME TO "{previous}"',
    ]


CLEAR_GAZETTEER = "DELETE FROM app.gazetteer WHERE layer = :layer"


def fill_gazetteer(table: str, field: str, group: bool) -> str:
    """Named places of a layer for the search box, in lon/lat: one per feature, or one per
    distinct name (a street from its gullies), with the extent to zoom to."""
    named = f'"{field}" IS NOT NULL AND btrim("{field}"::text) <> \'\''
    if group:
        return (
            "INSERT INTO app.gazetteer (layer, label, kind, geom, bbox)"
            f' SELECT :layer, "{field}"::text, :kind,'
            " ST_Transform(ST_PointOnSurface(ST_Collect(geom)), 4326),"
            " ST_Transform(ST_Envelope(ST_Collect(geom)), 4326)"
            f' FROM {qualified(table)} WHERE {named} GROUP BY "{field}"'
        )
    return (
        "INSERT INTO app.gazetteer (layer, label, kind, geom, bbox)"
        f' SELECT :layer, "{field}"::text, :kind, ST_Transform(ST_PointOnSurface(geom), 4326),'
        " ST_Transform(ST_Envelope(geom), 4326)"
        f" FROM {qualified(table)} WHERE {named}"
    )
