"""How fresh each layer is, and which loads failed: for the status page and /metrics.

A layer with a ``refresh`` schedule is on time while its last successful refresh (a
load, or a check that found the source unchanged) is younger than the schedule plus
half of it again (cron's granularity and the load's own time); overdue after that.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.catalogue import Catalogue
from loaders.pipeline import live_versions
from loaders.refresh import INTERVALS

GRACE = 1.5
SUCCESSFUL_CHECKS = ("loaded", "unchanged")

CHECKS = "SELECT layer, checked_at, outcome FROM app.source_checks"
# A 'loading' row whose layer lock nobody holds is a load that was killed; the loader
# marks it failed on the next load of that layer (loaders/sql.py MARK_INTERRUPTED).
PROBLEM_LOADS = """
SELECT v.layer, v.version, v.status, v.started_at, v.finished_at, v.run_by, v.message,
       v.status = 'loading' AND NOT EXISTS (
           SELECT 1 FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = ((hashtext('mapserver.load.' || v.layer)::bigint >> 32)
                              & 4294967295)::oid
             AND l.objid = (hashtext('mapserver.load.' || v.layer)::bigint & 4294967295)::oid
       ) AS orphaned
FROM app.layer_versions v
WHERE v.status IN ('failed', 'loading') AND v.started_at > now() - make_interval(days => :days)
ORDER BY v.started_at DESC
LIMIT :limit
"""
FAILED_LOADS = (
    "SELECT layer, count(*) AS n FROM app.layer_versions WHERE status = 'failed' GROUP BY layer"
)


@dataclass(frozen=True)
class Freshness:
    layer: str
    title: str
    schedule: str | None  # hourly, daily, weekly
    version: int | None
    loaded_at: datetime | None  # the live version's load
    checked_at: datetime | None  # the last refresh check, whatever it found
    check_outcome: str | None
    last_success: datetime | None
    state: str  # on time, overdue, not loaded, no schedule

    def age_seconds(self, now: datetime) -> float | None:
        return (now - self.loaded_at).total_seconds() if self.loaded_at else None


@dataclass(frozen=True)
class ProblemLoad:
    layer: str
    version: int
    state: str  # failed, interrupted, in progress
    started_at: datetime
    finished_at: datetime | None
    run_by: str
    message: str | None


def layer_freshness(conn: Connection, catalogue: Catalogue, now: datetime) -> list[Freshness]:
    live = live_versions(conn)
    checks = {row.layer: row for row in conn.execute(text(CHECKS))}
    result = []
    for layer in catalogue.layers.values():
        row, check = live.get(layer.id), checks.get(layer.id)
        successes = [row.finished_at] if row else []
        if check and check.outcome in SUCCESSFUL_CHECKS:
            successes.append(check.checked_at)
        last = max(successes) if successes else None
        if row is None:
            state = "not loaded"
        elif layer.refresh is None:
            state = "no schedule"
        elif last is None or now - last > INTERVALS[layer.refresh] * GRACE:
            state = "overdue"
        else:
            state = "on time"
        result.append(
            Freshness(
                layer.id,
                layer.title,
                layer.refresh,
                row.version if row else None,
                row.finished_at if row else None,
                check.checked_at if check else None,
                check.outcome if check else None,
                last,
                state,
            )  # fmt: skip
        )
    return result


def problem_loads(conn: Connection, days: int = 30, limit: int = 50) -> list[ProblemLoad]:
    """Failed, interrupted and running loads of the last ``days``, newest first."""
    loads = []
    for row in conn.execute(text(PROBLEM_LOADS), {"days": days, "limit": limit}):
        if row.status == "loading":
            state = "interrupted" if row.orphaned else "in progress"
        elif (row.message or "").startswith("interrupted"):
            state = "interrupted"
        else:
            state = "failed"
        loads.append(
            ProblemLoad(
                row.layer,
                row.version,
                state,
                row.started_at,
                row.finished_at,
                row.run_by,
                row.message,
            )  # fmt: skip
        )
    return loads


def failed_load_counts(conn: Connection) -> dict[str, int]:
    return {row.layer: row.n for row in conn.execute(text(FAILED_LOADS))}
