"""Every SQL statement of the loaders. Identifiers come from the validated catalogue
(lower-case, no quotes possible); values always go as parameters."""

from layers.tables import LAYER_SCHEMA

# Serialises loads of one layer across processes (two workers starting, cron + a person).
LOCK_LAYER = "SELECT pg_advisory_xact_lock(hashtext('mapserver.load.' || :layer))"
LOCK_SAMPLES = "SELECT pg_advisory_lock(hashtext('mapserver.samples'))"
UNLOCK_SAMPLES = "SELECT pg_advisory_unlock(hashtext('mapserver.samples'))"

NEXT_VERSION = """
INSERT INTO app.layer_versions (layer, version, status, source_uri, sha256, crs_out, run_by)
SELECT :layer, coalesce(max(version), 0) + 1, 'loading', :source_uri, :sha256, :crs_out, :run_by
FROM app.layer_versions WHERE layer = :layer
RETURNING id, version
"""

LIVE_LAYERS = "SELECT layer FROM app.layer_versions WHERE status = 'live'"

FAIL_VERSION = """
UPDATE app.layer_versions
SET status = 'failed', finished_at = now(), message = :message, rows_read = :rows_read,
    rows_rejected = :rows_rejected
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
    rows_rejected = :rows_rejected, rows_repaired = :rows_repaired, crs_in = :crs_in,
    details = CAST(:details AS jsonb)
WHERE id = :id
"""


def copy_into(table: str, columns: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'COPY {LAYER_SCHEMA}."{table}" ({names}) FROM STDIN WITH (FORMAT csv)'


def build_indexes(table: str) -> list[str]:
    """After the bulk copy, where they are cheaper to build; the primary key covers the id."""
    return [
        f'CREATE INDEX "{table}_geom_idx" ON {LAYER_SCHEMA}."{table}" USING gist (geom)',
        f'ANALYZE {LAYER_SCHEMA}."{table}"',
    ]


def drop_table(table: str) -> str:
    return f'DROP TABLE IF EXISTS {LAYER_SCHEMA}."{table}"'


def swap(live: str, staging: str, previous: str) -> list[str]:
    """Staging becomes live, live becomes previous: renames only, so the lock is brief."""
    return [
        "SET LOCAL lock_timeout = '10s'",
        drop_table(previous),
        f'ALTER TABLE IF EXISTS {LAYER_SCHEMA}."{live}" RENAME TO "{previous}"',
        f'ALTER TABLE {LAYER_SCHEMA}."{staging}" RENAME TO "{live}"',
    ]
