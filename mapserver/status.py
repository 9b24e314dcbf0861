"""``/status``: the service status page for staff — each layer's freshness against its
refresh schedule, failed and interrupted loads, the database, migrations and replicas.
Anonymous callers are sent to sign in; signed-in callers without the staff role get 404.
"""

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from mapserver.access import principal
from mapserver.database import server_versions
from mapserver.freshness import layer_freshness, problem_loads
from mapserver.health import readiness
from mapserver.pages import page_context, templates

router = APIRouter(include_in_schema=False)

TAGS = {  # state -> GOV.UK tag colour
    "on time": "green",
    "overdue": "red",
    "not loaded": "yellow",
    "no schedule": "grey",
    "failed": "red",
    "interrupted": "orange",
    "in progress": "blue",
    "ok": "green",
    "current": "green",
    "lagging": "orange",
    "unreachable": "red",
    "not current": "red",
    "not a standby": "red",
}


def _gather(request: Request) -> dict:
    now = datetime.now(UTC)
    engine = request.app.state.engine
    ready, detail = readiness(request)
    context: dict = {"now": now, "ready": ready, "detail": detail, "tags": TAGS}
    try:
        context["versions"] = server_versions(engine)
        with engine.connect() as conn:
            context["layers"] = layer_freshness(conn, request.app.state.catalogue, now)
            context["problems"] = problem_loads(conn)
    except DBAPIError:
        context |= {"versions": None, "layers": [], "problems": []}
    return context


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request) -> Response:
    who = principal(request)
    if who.role is None:
        return RedirectResponse("/login?next=/status", status_code=303)
    if not who.has("staff"):
        raise HTTPException(404)
    context = await run_in_threadpool(_gather, request)
    return templates.TemplateResponse(
        request,
        "status.html",
        {**page_context(request), **context},
        headers={"Cache-Control": "private, no-store"},
    )
