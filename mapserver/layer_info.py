"""``/layers/{id}`` for staff: a layer's catalogue entry and its provenance (every load,
its source, checksum, counts, CRS, who ran it, when) and its last refresh check."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from loaders import sql as loader_sql
from mapserver.access import principal

router = APIRouter(tags=["layers"])

LAST_CHECK = "SELECT checked_at, outcome FROM app.source_checks WHERE layer = :layer"


def _not_found(layer_id: str) -> JSONResponse:
    return JSONResponse(
        {"code": "NotFound", "description": f"Layer {layer_id!r} not found"}, status_code=404
    )


@router.get("/layers/{layer_id}", summary="A layer's provenance (staff)")
def layer_info(request: Request, layer_id: str) -> JSONResponse:
    who = principal(request)
    layer = request.app.state.catalogue.layers.get(layer_id)
    if layer is None or not who.has("staff"):
        return _not_found(layer_id)  # 404 for everyone else: nothing leaks
    with request.app.state.engine.connect() as conn:
        versions = conn.exec_driver_sql(loader_sql.HISTORY, {"layer": layer_id}).mappings().all()
        check = conn.execute(text(LAST_CHECK), {"layer": layer_id}).mappings().one_or_none()
    history: list[dict[str, Any]] = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in versions
    ]
    return JSONResponse(
        {
            "layer": layer.model_dump(mode="json"),
            "versions": history,
            "last_refresh_check": (
                {"checked_at": check["checked_at"].isoformat(), "outcome": check["outcome"]}
                if check
                else None
            ),
        },
        headers={"Cache-Control": "private, no-store"},
    )
