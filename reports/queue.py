"""The staff side's reads: the triage queue with its filters, the CSV export of it, and
the dashboard's figures. Every query here is for staff (personal data included); the
public reads are in :mod:`reports.store`.
"""

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row

from reports import domain
from reports.categories import ReportsConfig
from reports.domain import State

PAGE = 50
MAX_CSV = 100_000
OPEN = "open_any"  # the state filter's "any open state"
AGES = {"1": 1, "7": 7, "28": 28, "90": 90}  # "older than N days" choices


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows; every value checked against the configuration, so the SQL
    gets only known values (and always as parameters)."""

    category: str | None = None
    ward: str | None = None
    state: str | None = OPEN
    team: str | None = None
    older_than: int | None = None
    search: str | None = None

    def query(self) -> dict[str, str]:
        """The filter as URL query parameters (for links, the CSV and the map)."""
        values = asdict(self)
        values["older_than"] = str(self.older_than) if self.older_than else None
        return {k: str(v) for k, v in values.items() if v}


def parse_filter(params: Mapping[str, str], config: ReportsConfig) -> QueueFilter:
    """The filter from a query string; unknown values are dropped rather than trusted
    (a stale bookmark shows the whole queue, not an error page)."""
    categories = {c.id for c in config.categories}
    states = {s.value for s in State} | {OPEN, "all"}
    state = params.get("state", OPEN) or OPEN
    return QueueFilter(
        category=params.get("category") if params.get("category") in categories else None,
        ward=(params.get("ward") or "").strip()[:80] or None,
        state=state if state in states and state != "all" else None,
        team=params.get("team") if params.get("team") in config.teams else None,
        older_than=AGES.get(params.get("older_than", "")),
        search=(params.get("search") or "").strip()[:80] or None,
    )


def _where(f: QueueFilter) -> tuple[str, dict[str, Any]]:
    clauses, binds = ["TRUE"], {}
    if f.category:
        clauses.append("r.category = :category")
        binds["category"] = f.category
    if f.ward:
        clauses.append("r.ward = :ward")
        binds["ward"] = f.ward
    if f.state == OPEN:
        clauses.append("r.state = ANY(:open)")
        binds["open"] = [s.value for s in domain.OPEN_STATES]
    elif f.state:
        clauses.append("r.state = :state")
        binds["state"] = f.state
    if f.team:
        clauses.append("r.team = :team")
        binds["team"] = f.team
    if f.older_than:
        clauses.append("r.created_at < now() - make_interval(days => :older)")
        binds["older"] = f.older_than
    if f.search:
        clauses.append("(r.reference ILIKE :like OR r.title ILIKE :like)")
        binds["like"] = "%" + f.search.replace("\\", "\\\\").replace("%", r"\%") + "%"
    return " AND ".join(clauses), binds


QUEUE_COLUMNS = """
r.id, r.reference, r.category, r.state, r.ward, r.team, r.title, r.asset_id,
r.interest_count, r.created_at, r.updated_at, r.first_response_at, r.fixed_at, r.hidden,
r.reporter_name, r.reporter_email, r.reporter_phone, r.source,
ST_X(r.geom) AS x, ST_Y(r.geom) AS y,
ST_X(ST_Transform(r.geom, 4326)) AS lon, ST_Y(ST_Transform(r.geom, 4326)) AS lat
"""


def queue(conn: Connection, f: QueueFilter, *, limit: int = PAGE, offset: int = 0) -> list[Row]:
    """A page of the queue, oldest first (the longest waiting at the top)."""
    where, binds = _where(f)
    return conn.execute(
        text(
            f"SELECT {QUEUE_COLUMNS} FROM app.reports r WHERE {where}"
            " ORDER BY r.created_at, r.id LIMIT :limit OFFSET :offset"
        ),
        {**binds, "limit": limit, "offset": offset},
    ).all()


def count(conn: Connection, f: QueueFilter) -> int:
    where, binds = _where(f)
    return conn.execute(
        text(f"SELECT count(*) FROM app.reports r WHERE {where}"), binds
    ).scalar_one()


CSV_HEADER = [
    "reference", "category", "state", "ward", "team", "title", "asset_id", "interest",
    "created_at", "updated_at", "first_response_at", "fixed_at", "source", "hidden",
    "reporter_name", "reporter_email", "reporter_phone", "easting", "northing", "lon", "lat",
]  # fmt: skip


def csv_rows(conn: Connection, f: QueueFilter) -> Iterator[list[Any]]:
    """The whole filtered queue as CSV rows (header first), staff's personal data included."""
    yield CSV_HEADER
    for r in queue(conn, f, limit=MAX_CSV):
        yield [
            r.reference, r.category, r.state, r.ward, r.team, r.title, r.asset_id,
            r.interest_count, r.created_at, r.updated_at, r.first_response_at, r.fixed_at,
            r.source, r.hidden, r.reporter_name, r.reporter_email, r.reporter_phone,
            round(r.x, 1), round(r.y, 1), round(r.lon, 6), round(r.lat, 6),
        ]  # fmt: skip


def nearby(conn: Connection, report_id: int, metres: float = 250) -> list[Row]:
    """Other reports within ``metres`` in the last 90 days (any state): what an inspector
    checks before calling something new or a duplicate."""
    return conn.execute(
        text(
            "SELECT o.reference, o.category, o.state, o.title, o.created_at,"
            " round(ST_Distance(o.geom, r.geom)::numeric) AS distance"
            " FROM app.reports r JOIN app.reports o"
            " ON o.id <> r.id AND ST_DWithin(o.geom, r.geom, :metres)"
            " WHERE r.id = :id AND o.created_at > now() - interval '90 days'"
            " ORDER BY o.geom <-> r.geom LIMIT 20"
        ),
        {"id": report_id, "metres": metres},
    ).all()


def asset_history(conn: Connection, report_id: int) -> list[Row]:
    """Every other report on the same asset, newest first."""
    return conn.execute(
        text(
            "SELECT o.reference, o.state, o.title, o.created_at, o.fixed_at"
            " FROM app.reports r JOIN app.reports o ON o.id <> r.id"
            " AND o.asset_layer = r.asset_layer AND o.asset_id = r.asset_id"
            " WHERE r.id = :id AND r.asset_id IS NOT NULL ORDER BY o.created_at DESC LIMIT 50"
        ),
        {"id": report_id},
    ).all()


# -- the dashboard --------------------------------------------------------------------

BY_CATEGORY = """
SELECT category AS key, count(*) AS total, count(*) FILTER (WHERE state = ANY(:open)) AS open
FROM app.reports WHERE created_at > now() - make_interval(days => :days)
GROUP BY category ORDER BY total DESC
"""
BY_WARD = """
SELECT coalesce(ward, 'Unknown') AS key, count(*) AS total,
       count(*) FILTER (WHERE state = ANY(:open)) AS open
FROM app.reports WHERE created_at > now() - make_interval(days => :days)
GROUP BY 1 ORDER BY total DESC
"""
BY_WEEK = """
SELECT to_char(date_trunc('week', created_at), 'YYYY-MM-DD') AS key, count(*) AS total,
       count(*) FILTER (WHERE fixed_at IS NOT NULL) AS fixed
FROM app.reports WHERE created_at > now() - make_interval(days => :days)
GROUP BY 1 ORDER BY 1
"""
# Hours to the first staff response and days to the fix: median and 90th percentile.
TIMES = """
SELECT category AS key, count(*) AS total,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)
      / 3600) AS response_h_median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)
      / 3600) AS response_h_p90,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fixed_at - created_at)
      / 86400) AS fix_d_median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM fixed_at - created_at)
      / 86400) AS fix_d_p90
FROM app.reports WHERE created_at > now() - make_interval(days => :days)
GROUP BY ROLLUP (category) ORDER BY category NULLS LAST
"""
BACKLOG = """
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 day') AS under_1_day,
       count(*) FILTER (WHERE created_at <= now() - interval '1 day'
                          AND created_at > now() - interval '7 days') AS days_1_to_7,
       count(*) FILTER (WHERE created_at <= now() - interval '7 days'
                          AND created_at > now() - interval '28 days') AS days_7_to_28,
       count(*) FILTER (WHERE created_at <= now() - interval '28 days') AS over_28_days
FROM app.reports WHERE state = ANY(:open)
"""


def dashboard(conn: Connection, days: int = 90) -> dict[str, Any]:
    """The dashboard's figures for reports made in the last ``days`` (the backlog: every
    open report, whatever its age)."""
    binds = {"days": days, "open": [s.value for s in domain.OPEN_STATES]}

    def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in conn.execute(text(sql), binds)]

    return {
        "days": days,
        "by_category": rows(BY_CATEGORY),
        "by_ward": rows(BY_WARD),
        "by_week": rows(BY_WEEK),
        "times": rows(TIMES),
        "backlog": rows(BACKLOG)[0],
    }
