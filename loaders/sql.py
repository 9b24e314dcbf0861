"""Every SQL statement of the loaders. Identifiers come from the validated catalogue
(lower-case, no quotes possible); values always go as parameters, in psycopg2's
``%(name)s`` form: the loaders talk to PostgreSQL through psycopg2 alone (SQLAlchemy
callers pass them to ``exec_driver_sql``)."""

from layers.model import Layer
from layers.tables import LAYER_SCHEMA, create_table

# Serialises loads of one layer across processes (two workers starting, cron + a person).
# A load holds it on its own connection from start to end, over several transactions.
LOCK_LAYER = "SELECT pg_advisory_xact_lock(hashtext('mapserver.load.' || %(layer)s))"
TRY_LOCK_LOAD = "SELECT pg_try_advisory_lock(hashtext('mapserver.load.' || %(layer)s))"
UNLOCK_LOAD = "SELECT pg_advisory_unlock(hashtext('mapserver.load.' || %(layer)s))"
LOAD_POSTGIS = "SELECT postgis_lib_version()"
LOCK_SAMPLES = "SELECT pg_advisory_lock(hashtext('mapserver.samples'))"
UNLOCK_SAMPLES = "SELECT pg_advisory_unlock(hashtext('mapserver.samples'))"

# A 'loading' row whose layer lock is free belongs to a load that was killed.
MARK_INTERRUPTED = """
UPDATE app.layer_versions
SET status = 'failed', finished_at = now(), message = 'interrupted: the load did not finish'
WHERE layer = %(layer)s AND status = 'loading'
RETURNING version
"""

NEXT_VERSION = """
INSERT INTO app.layer_versions
    (layer, version, status, source_uri, sha256, crs_in, crs_out, run_by)
SELECT %(layer)s, coalesce(max(version), 0) + 1, 'loading', %(source_uri)s, %(sha256)s,
       %(crs_in)s, %(crs_out)s, %(run_by)s
FROM app.layer_versions WHERE layer = %(layer)s
RETURNING id, version
"""

LIVE_VERSIONS = """
SELECT layer, version, rows_loaded, finished_at FROM app.layer_versions WHERE status = 'live'
"""

LIVE_VERSION = """
SELECT id, version, source_uri, sha256, details, finished_at
FROM app.layer_versions WHERE layer = %(layer)s AND status = 'live'
"""

HISTORY = """
SELECT version, status, source_uri, rows_read, rows_loaded, rows_rejected, rows_repaired,
       crs_in, started_at, finished_at, run_by, message
FROM app.layer_versions WHERE layer = %(layer)s ORDER BY version DESC
"""

FAIL_VERSION = """
UPDATE app.layer_versions
SET status = 'failed', finished_at = now(), message = %(message)s, rows_read = %(rows_read)s,
    rows_rejected = %(rows_rejected)s, details = CAST(%(details)s AS jsonb),
    sha256 = coalesce(%(sha256)s, sha256)
WHERE id = %(id)s
"""

RETIRE_PREVIOUS = """
UPDATE app.layer_versions SET status = 'retired'
WHERE layer = %(layer)s AND status = 'previous'
"""
DEMOTE_LIVE = """
UPDATE app.layer_versions SET status = 'previous' WHERE layer = %(layer)s AND status = 'live'
"""
UPDATE_DETAILS = (
    "UPDATE app.layer_versions SET details = details || CAST(%(details)s AS jsonb)"
    " WHERE id = %(id)s"
)
PROMOTE = """
UPDATE app.layer_versions
SET status = 'live', finished_at = now(), rows_read = %(rows_read)s,
    rows_loaded = %(rows_loaded)s, rows_rejected = %(rows_rejected)s,
    rows_repaired = %(rows_repaired)s, details = CAST(%(details)s AS jsonb),
    sha256 = coalesce(%(sha256)s, sha256)
WHERE id = %(id)s
"""
# Rollback: live and previous trade places (one row at a time: one live row per layer).
PREVIOUS_ID = "SELECT id FROM app.layer_versions WHERE layer = %(layer)s AND status = 'previous'"
MAKE_LIVE = "UPDATE app.layer_versions SET status = 'live' WHERE id = %(id)s RETURNING version"


def qualified(table: str) -> str:
    return f'{LAYER_SCHEMA}."{table}"'


# A layer's table is written once, then only read: the vacuum that inserts trigger is
# off, as it would hold a lock that the next load's swap then waits on (a second, until
# autovacuum gives way).
NO_INSERT_VACUUM = "WITH (autovacuum_vacuum_insert_threshold = -1)"


def create_staging(table: str, layer: Layer) -> str:
    """The layer's table with no primary key yet: added after the COPY, as a sort, not
    row by row. Its rows are frozen as they are copied (see :func:`copy_into`), so that
    vacuum would have nothing to do anyway."""
    return f"{create_table(layer, table, primary_key=False)} {NO_INSERT_VACUUM}"


def id_index(table: str, id_field: str) -> str:
    """The primary key's index, built as any other (beside the GiST: a primary key made
    by ALTER TABLE would lock the table against it)."""
    return f'CREATE UNIQUE INDEX "{table}_pkey" ON {qualified(table)} ("{id_field}")'


def primary_key(table: str) -> str:
    """The id index becomes the primary key: no scan, the id column is NOT NULL."""
    return (
        f'ALTER TABLE {qualified(table)} ADD CONSTRAINT "{table}_pkey"'
        f' PRIMARY KEY USING INDEX "{table}_pkey"'
    )


def copy_into(table: str, columns: list[str]) -> str:
    """Binary COPY into a table made in the same transaction: FREEZE writes the rows
    frozen and all-visible (no hint bits for the index builds and ANALYZE to set, no
    page rewritten by a later vacuum)."""
    names = ", ".join(f'"{c}"' for c in columns)
    return f"COPY {qualified(table)} ({names}) FROM STDIN WITH (FORMAT binary, FREEZE)"


# The council boundary in a layer's CRS, grown by a tolerance in metres, as a load checks
# it: made once per boundary version, CRS and tolerance (buffering Stockport's boundary
# takes 50-75 ms, a tenth of a 150,000-parcel load) and kept with that version.
CACHED_BOUNDARY = """
SELECT v.id, b.version_id IS NOT NULL, b.wkb
FROM app.layer_versions v
LEFT JOIN app.load_boundaries b
    ON b.version_id = v.id AND b.srid = %(srid)s AND b.tolerance_m = %(tolerance)s
WHERE v.layer = %(layer)s AND v.status = 'live'
"""


def store_boundary(table: str) -> str:
    return f"""
INSERT INTO app.load_boundaries (version_id, srid, tolerance_m, wkb)
SELECT %(version_id)s, %(srid)s, %(tolerance)s,
       ST_AsBinary(ST_Buffer(ST_Transform(ST_Union(geom), %(srid)s), %(tolerance)s))
FROM {qualified(table)}
WHERE EXISTS (SELECT FROM app.layer_versions WHERE id = %(version_id)s AND status = 'live')
ON CONFLICT (version_id, srid, tolerance_m) DO UPDATE SET wkb = EXCLUDED.wkb
RETURNING wkb
"""


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


def gist_index(table: str) -> str:
    return f'CREATE INDEX "{table}_geom_idx" ON {qualified(table)} USING gist (geom)'


def field_indexes(table: str, fields: list[str]) -> list[str]:
    # Short names: a table name plus a field name may pass PostgreSQL's 63 characters.
    return [
        f'CREATE INDEX "{table}_i{number}" ON {qualified(table)} ("{name}")'
        for number, name in enumerate(fields)
    ]


# ANALYZE of a loaded table samples 300 x this many rows: half the default's 30,000 still
# gives most-common values and histograms of 50 entries (a 50 x 50 grid for geometry),
# plenty for a layer's filters and boxes, in half the time (0.13 s to 0.06 s on 150,000
# polygons).
STATISTICS_TARGET = 50


def analyze(table: str) -> list[str]:
    return [
        f"SET LOCAL default_statistics_target = {STATISTICS_TARGET}",
        f"ANALYZE {qualified(table)}",
    ]


def build_indexes(table: str, fields: list[str]) -> list[str]:
    """After the bulk copy, where they are cheaper to build; the primary key covers the id."""
    return [gist_index(table), *field_indexes(table, fields), *analyze(table)]


def derive(target: str, parent: str, columns: list[str], field: str) -> list[str]:
    names = ", ".join(f'"{c}"' for c in columns)
    return [
        f"CREATE TABLE {qualified(target)} {NO_INSERT_VACUUM} AS SELECT {names}, geom"
        f' FROM {qualified(parent)} WHERE "{field}"::text = ANY(CAST(%(values)s AS text[]))',
        f'ALTER TABLE {qualified(target)} ADD PRIMARY KEY ("{columns[0]}")',
        f"ALTER TABLE {qualified(target)} ALTER COLUMN geom SET NOT NULL",
    ]


def drop_table(table: str) -> str:
    return f"DROP TABLE IF EXISTS {qualified(table)}"


# For the load's own transactions: index builds sort in memory, each in one process (two
# build at once, the GiST beside the B-trees: parallel B-tree workers only slowed the
# GiST, 0.17 s to 0.22 s on 150,000 polygons with 2 cores), and commits do not wait for
# the disk (a crash just after one loses this load, never the previous version).
INDEX_MEMORY = "SET LOCAL maintenance_work_mem = '512MB'"
SERIAL_INDEX_BUILDS = "SET LOCAL max_parallel_maintenance_workers = 0"
NO_WAIT_COMMIT = "SET LOCAL synchronous_commit = off"
LOAD_SETTINGS = [INDEX_MEMORY, SERIAL_INDEX_BUILDS, NO_WAIT_COMMIT]


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


CLEAR_GAZETTEER = "DELETE FROM app.gazetteer WHERE layer = %(layer)s"


def fill_gazetteer(table: str, field: str, group: bool) -> str:
    """Named places of a layer for the search box, in lon/lat: one per feature, or one per
    distinct name (a street from its gullies), with the extent to zoom to."""
    named = f'"{field}" IS NOT NULL AND btrim("{field}"::text) <> \'\''
    if group:
        return (
            "INSERT INTO app.gazetteer (layer, label, kind, geom, bbox)"
            f' SELECT %(layer)s, "{field}"::text, %(kind)s,'
            " ST_Transform(ST_PointOnSurface(ST_Collect(geom)), 4326),"
            " ST_Transform(ST_Envelope(ST_Collect(geom)), 4326)"
            f' FROM {qualified(table)} WHERE {named} GROUP BY "{field}"'
        )
    return (
        "INSERT INTO app.gazetteer (layer, label, kind, geom, bbox)"
        f' SELECT %(layer)s, "{field}"::text, %(kind)s,'
        " ST_Transform(ST_PointOnSurface(geom), 4326),"
        " ST_Transform(ST_Envelope(geom), 4326)"
        f" FROM {qualified(table)} WHERE {named}"
    )
