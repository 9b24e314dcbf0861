"""Prometheus metrics at ``/metrics``, for staff and admin or callers on an internal
network (``metrics_networks``); anyone else gets the same 404 as an unknown path.

Request counts and latencies are kept in this process (with several worker processes,
set ``PROMETHEUS_MULTIPROC_DIR`` to a shared empty folder and every worker's figures are
added up). Everything read from the database (report intake, job queue, layer
freshness) is read at scrape time, so every worker answers the same.
"""

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import ip_address

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from layers.catalogue import Catalogue
from mapserver.access import principal
from mapserver.freshness import failed_load_counts, layer_freshness

router = APIRouter(include_in_schema=False)

REQUESTS = Counter(
    "mapserver_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "mapserver_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Tables other capabilities add (reports, their email outbox): counted once the columns
# read here exist, skipped before.
OPTIONAL_TABLES = """
SELECT bool_or(table_name = 'reports' AND column_name = 'created_at') AS reports,
       bool_or(table_name = 'email_outbox' AND column_name = 'sent_at') AS outbox
FROM information_schema.columns WHERE table_schema = 'app'
"""
OUTBOX = "SELECT count(*) FROM app.email_outbox WHERE sent_at IS NULL"
REPORTS = """
SELECT count(*) AS total, count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour
FROM app.reports
"""
JOBS = "SELECT status, count(*) AS n FROM app.jobs GROUP BY status"
QUEUED_JOB_STATES = ("accepted", "running")

TileCacheStats = Callable[[], tuple[int, int]]  # hits, misses since the process started
_tile_cache: list[TileCacheStats] = []


def watch_tile_cache(stats: TileCacheStats) -> None:
    """Let the tile cache publish its hits and misses (read at each scrape)."""
    _tile_cache[:] = [stats]


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class ServiceCollector(Collector):
    """What the database and the pool say, at each scrape."""

    def __init__(self, engine: Engine, catalogue: Catalogue) -> None:
        self.engine = engine
        self.catalogue = catalogue

    def collect(self) -> Iterator[Metric]:
        pool = self.engine.pool
        in_use = GaugeMetricFamily(
            "mapserver_db_pool_connections", "Pooled connections of this process.", labels=["state"]
        )
        in_use.add_metric(["checked_out"], pool.checkedout())  # type: ignore[attr-defined]
        in_use.add_metric(["idle"], pool.checkedin())  # type: ignore[attr-defined]
        in_use.add_metric(["overflow"], max(pool.overflow(), 0))  # type: ignore[attr-defined]
        yield in_use
        yield _gauge("mapserver_db_pool_size", "Pool size.", pool.size())  # type: ignore[attr-defined]
        if _tile_cache:
            hits, misses = _tile_cache[0]()
            yield CounterMetricFamily("mapserver_tile_cache_hits", "Tile cache hits.", hits)
            yield CounterMetricFamily("mapserver_tile_cache_misses", "Tile cache misses.", misses)
            ratio = hits / (hits + misses) if hits + misses else 0.0
            yield _gauge("mapserver_tile_cache_hit_ratio", "Hits over lookups.", ratio)
        started = time.perf_counter()
        try:
            yield from self._database()
            up = 1.0
        except DBAPIError:
            up = 0.0
        yield _gauge("mapserver_database_up", "1 when the database answered the scrape.", up)
        yield _gauge(
            "mapserver_scrape_database_seconds",
            "Time the scrape spent in the database.",
            time.perf_counter() - started,
        )

    def _database(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            optional = conn.execute(text(OPTIONAL_TABLES)).one()
            jobs = {row.status: row.n for row in conn.execute(text(JOBS))}
            freshness = layer_freshness(conn, self.catalogue, now)
            failed = failed_load_counts(conn)
            reports = conn.execute(text(REPORTS)).one() if optional.reports else None
            outbox = conn.execute(text(OUTBOX)).scalar_one() if optional.outbox else None
        queue = GaugeMetricFamily(
            "mapserver_jobs", "OGC API Processes jobs by status.", labels=["status"]
        )
        for status in sorted(set(jobs) | set(QUEUED_JOB_STATES)):
            queue.add_metric([status], jobs.get(status, 0))
        yield queue
        yield _gauge(
            "mapserver_job_queue_depth",
            "Jobs accepted or running.",
            sum(jobs.get(s, 0) for s in QUEUED_JOB_STATES),
        )
        if reports is not None:
            yield CounterMetricFamily(
                "mapserver_reports_received", "Fault reports received.", reports.total
            )
            yield _gauge(
                "mapserver_reports_last_hour", "Reports received in the last hour.", reports.hour
            )
        if outbox is not None:
            yield _gauge("mapserver_email_outbox_pending", "Emails waiting to be sent.", outbox)
        age = GaugeMetricFamily(
            "mapserver_layer_age_seconds", "Age of the live version.", labels=["layer"]
        )
        version = GaugeMetricFamily("mapserver_layer_version", "Live version.", labels=["layer"])
        overdue = GaugeMetricFamily(
            "mapserver_layer_overdue", "1 when a scheduled refresh is overdue.", labels=["layer"]
        )
        failures = CounterMetricFamily(
            "mapserver_layer_loads_failed", "Failed or interrupted loads.", labels=["layer"]
        )
        for layer in freshness:
            if layer.loaded_at is not None and layer.version is not None:
                age.add_metric([layer.layer], layer.age_seconds(now) or 0.0)
                version.add_metric([layer.layer], layer.version)
            overdue.add_metric([layer.layer], 1.0 if layer.state == "overdue" else 0.0)
            failures.add_metric([layer.layer], failed.get(layer.layer, 0))
        yield from (age, version, overdue, failures)


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def may_read_metrics(request: Request) -> bool:
    if principal(request).has("staff"):
        return True
    client = request.client.host if request.client else None
    try:
        address = ip_address(client) if client else None
    except ValueError:  # a unix socket or a test client's name
        return False
    if address is not None and address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    networks = request.app.state.settings.metrics_networks
    return address is not None and any(address in network for network in networks)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    if not may_read_metrics(request):
        raise HTTPException(404)
    service = CollectorRegistry(auto_describe=False)
    service.register(ServiceCollector(request.app.state.engine, request.app.state.catalogue))
    body = _process_metrics() + await run_in_threadpool(generate_latest, service)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
