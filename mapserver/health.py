"""``/healthz``: database and PostGIS versions and each layer's row count and version."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from layers.tables import LAYER_SCHEMA
from loaders.pipeline import live_versions
from mapserver.database import server_versions

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="Service health")
def healthz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    catalogue = request.app.state.catalogue
    try:
        versions = server_versions(engine)
        counts = " UNION ALL ".join(
            f"SELECT '{layer.id}' AS layer, count(*) AS n"
            f' FROM {LAYER_SCHEMA}."{layer.table_name}"'
            for layer in catalogue.layers.values()
        )
        with engine.connect() as conn:
            rows = {r.layer: r.n for r in conn.execute(text(counts))} if counts else {}
            live = live_versions(conn)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        return JSONResponse({"status": "error", "database": reason}, status_code=503)
    layers = {
        layer_id: {
            "rows": n,
            "version": live[layer_id].version if layer_id in live else None,
            "loaded_at": live[layer_id].finished_at.isoformat() if layer_id in live else None,
        }
        for layer_id, n in rows.items()
    }
    return JSONResponse({"status": "ok", "database": versions, "layers": layers})
