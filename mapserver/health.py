"""``/healthz`` (liveness: cheap, for a container's health check) and ``/readyz``
(readiness: the database and any replicas answer, and the schema is at this code's
newest migration; 503 otherwise, for a load balancer or an orchestrator)."""

from typing import Any

import psycopg2
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from loaders.pipeline import live_versions
from mapserver.database import schema_revisions, server_versions
from mapserver.settings import Settings

router = APIRouter()

REPLICA_STATE = """
SELECT pg_is_in_recovery() AS standby,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS lag_s
"""
REPLICA_TIMEOUT_S = 3


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"


@router.get("/healthz", tags=["operations"], summary="Liveness")
def healthz(request: Request) -> JSONResponse:
    """Database versions and each layer's live version and rows, from the provenance
    records (no table is counted: this is polled every few seconds)."""
    engine = request.app.state.engine
    try:
        versions = server_versions(engine)
        with engine.connect() as conn:
            live = live_versions(conn)
    except DBAPIError as exc:
        return JSONResponse({"status": "error", "database": _reason(exc)}, status_code=503)
    # A managed layer (residents' reports) is never loaded: it has no load record to read.
    layers = {
        layer.id: {
            "rows": live[layer.id].rows_loaded
            if layer.id in live
            else (None if layer.managed else 0),
            "version": live[layer.id].version if layer.id in live else None,
            "loaded_at": live[layer.id].finished_at.isoformat() if layer.id in live else None,
        }
        for layer in request.app.state.catalogue.layers.values()
    }
    return JSONResponse({"status": "ok", "database": versions, "layers": layers})


def replica_urls(settings: Settings) -> list[str]:
    """``database_replica_urls`` when this build has read replicas (see the README)."""
    return list(getattr(settings, "database_replica_urls", None) or [])


def replica_state(url: str, max_lag_s: float | None) -> dict[str, Any]:
    """One replica: reachable, a standby, and how far behind the primary."""
    parsed = make_url(url).set(drivername="postgresql")
    try:
        conn = psycopg2.connect(
            parsed.render_as_string(hide_password=False), connect_timeout=REPLICA_TIMEOUT_S,
            application_name="mapserver readiness",
        )  # fmt: skip
    except psycopg2.Error as exc:
        return {"state": "unreachable", "error": str(exc).strip().splitlines()[0]}
    try:
        with conn.cursor() as cur:
            cur.execute(REPLICA_STATE)
            standby, lag = cur.fetchone()
    finally:
        conn.close()
    lag_s = float(lag) if lag is not None else None
    state = "ok" if standby else "not a standby"
    if standby and lag_s is not None and max_lag_s is not None and lag_s > max_lag_s:
        state = "lagging"
    return {"state": state, "lag_s": round(lag_s, 3) if lag_s is not None else None}


def readiness(request: Request) -> tuple[bool, dict[str, Any]]:
    settings = request.app.state.settings
    heads: set[str] = request.app.state.migration_heads
    detail: dict[str, Any] = {}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        detail["database"] = {"state": "ok"}
        current = schema_revisions(request.app.state.engine)
        detail["migrations"] = {
            "state": "current" if current == heads else "not current",
            "database": sorted(current),
            "code": sorted(heads),
        }
    except DBAPIError as exc:
        detail["database"] = {"state": "unreachable", "error": _reason(exc)}
    max_lag = getattr(settings, "replica_max_lag_s", None)
    detail["replicas"] = [
        {"replica": n, **replica_state(url, max_lag)}
        for n, url in enumerate(replica_urls(settings), start=1)
    ]
    ready = (
        detail["database"]["state"] == "ok"
        and detail.get("migrations", {}).get("state") == "current"
        and all(r["state"] != "unreachable" for r in detail["replicas"])
    )
    return ready, detail


@router.get("/readyz", tags=["operations"], summary="Readiness")
async def readyz(request: Request) -> JSONResponse:
    """200 when the service can answer: database and replicas reachable, schema current;
    503 with the same detail otherwise. A lagging replica is reported, not fatal: reads
    then go to the primary."""
    ready, detail = await run_in_threadpool(readiness, request)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", **detail},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )
