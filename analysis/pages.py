"""Staff pages of the analyses: one map page per analysis (draw or pick the site, run it as
an OGC API job, see and download the result), the list of jobs, and each job's own page
with its downloads (GeoJSON, CSV, PDF report) that staff can share by link."""

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from analysis import jobs
from analysis.exports import result_csv, result_geojson
from analysis.processes import ANALYSES
from analysis.reach import ACCESS_M, MAX_NETWORK_M, MAX_REACH_M
from analysis.report import render_pdf, summary_table
from loaders.pipeline import live_versions
from mapserver.access import Principal, principal
from mapserver.ogc import MOUNT
from mapserver.pages import basemap_config, map_config, page_context, templates

router = APIRouter(include_in_schema=False)
PRIVATE = {"Cache-Control": "private, no-store"}


@dataclass(frozen=True)
class Page:
    slug: str
    process: str
    title: str
    summary: str
    tools: tuple[str, ...]  # what the user may draw: point, line, polygon (parcel: a point)


PAGES = {
    page.slug: page
    for page in (
        Page("constraints", "site-constraints", "Site constraints report",
             "Flood zones, conservation areas, protected trees, land parcels and planning "
             "history on and around a site, with the share of the site each covers.",
             ("polygon", "parcel")),
        Page("reach", "incident-reach", "Incident reach",
             "What lies within a distance of an incident: care settings, schools, "
             "defibrillators, rest centres, properties and residents.",
             ("point", "line", "polygon")),
        Page("ownership", "ownership", "Land ownership",
             "Who owns the land on a parcel or area, and council-owned land nearby.",
             ("parcel", "polygon")),
    )
}  # fmt: skip
# Layers ticked at first on the reach page: what emergency planners ask about first.
REACH_KEYWORDS = {"care homes", "schools", "defibrillators", "rest centres"}
SLUG_OF = {page.process: page.slug for page in PAGES.values()}


def _denied(request: Request, who: Principal, role: str = "staff") -> Response:
    """Anonymous people are asked to sign in; a signed-in role below the page's is refused."""
    if who.role is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return _page(request, "forbidden.html", status=403, role=role)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:  # noqa: ANN401
    return templates.TemplateResponse(
        request, template, {**page_context(request), **context}, status_code=status,
        headers=PRIVATE,
    )  # fmt: skip


def _pages_for(who: Principal) -> list[Page]:
    return [p for p in PAGES.values() if who.has(ANALYSES[p.process].least_role)]


@router.get("/analysis", response_class=HTMLResponse)
def analysis_index(request: Request) -> Response:
    who = principal(request)
    pages = _pages_for(who)
    if not pages:
        return _denied(request, who, "emergency planners and staff")
    return _page(request, "analysis_index.html", pages=pages, staff=who.has("staff"))


@router.get("/analysis/{slug}", response_class=HTMLResponse)
def analysis_page(request: Request, slug: str) -> Response:
    page = PAGES.get(slug)
    if page is None:
        return HTMLResponse("Not found", status_code=404)
    who = principal(request)
    if not who.has(role := ANALYSES[page.process].least_role):
        return _denied(request, who, role)
    catalogue = request.app.state.catalogue
    with request.app.state.engine.connect() as conn:
        updated = {layer: row.finished_at for layer, row in live_versions(conn).items()}
    config = map_config(catalogue, who, updated)
    config["basemap"] = basemap_config(request.app.state.settings)
    readable = [layer for layer in catalogue.layers.values() if who.can_read(layer)]
    modes = sorted({mode for layer in readable for mode in layer.network})
    analysis = {
        "process": page.process,
        "slug": page.slug,
        "title": page.title,
        "tools": list(page.tools),
        "executeUrl": f"{MOUNT}/processes/{page.process}/execution",
        "jobsUrl": f"{MOUNT}/jobs",
        "csrfToken": request.scope.get("csrf_token"),
        "job": request.query_params.get("job"),
    }
    defaults = [
        layer.id for layer in readable
        if layer.population or REACH_KEYWORDS & {k.lower() for k in layer.keywords}
    ]  # fmt: skip
    reach_layers = [
        layer for layer in readable
        if layer.id != catalogue.council.boundary_layer and not layer.network
    ]  # fmt: skip
    return _page(
        request, "analysis.html", page=page, config=config, analysis=analysis,
        reach_layers=reach_layers, default_layers=defaults, modes=modes, max_reach=MAX_REACH_M,
        max_network=MAX_NETWORK_M, access_m=ACCESS_M,
    )  # fmt: skip


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> Response:
    who = principal(request)
    if not who.has("staff"):
        return _denied(request, who)
    rows = jobs.recent_jobs(request.app.state.engine)
    titles = {p.process: p.title for p in PAGES.values()}
    return _page(request, "jobs.html", jobs=rows, titles=titles,
                 retention=request.app.state.settings.jobs_retention_days)  # fmt: skip


def _job_or_none(request: Request, job_id: str) -> Any:  # noqa: ANN401 (a row)
    return jobs.visible_job(request.app.state.engine, job_id, principal(request))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    job = _job_or_none(request, job_id)
    if job is None:
        return _page(request, "job.html", status=404, job=None)
    result = jobs.job_result(job)
    slug = SLUG_OF.get(job.process_id)
    return _page(
        request, "job.html", job=job, result=result, slug=slug,
        summary=summary_table(result) if result and "sections" in result else None,
        title=PAGES[slug].title if slug else job.process_id,
        share_url=f"{request.app.state.settings.base_url}/jobs/{job.identifier}",
    )  # fmt: skip


def _download(request: Request, job_id: str) -> tuple[Any, dict | None]:  # noqa: ANN401
    job = _job_or_none(request, job_id)
    result = jobs.job_result(job) if job is not None else None
    if result is None or "sections" not in result:
        return job, None
    return job, result


def _attachment(body: bytes, media: str, name: str) -> Response:
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type=media, headers=headers)


NO_RESULT = {"detail": "No such job, or it has no result yet."}


@router.get("/jobs/{job_id}/result.geojson")
def job_geojson(request: Request, job_id: str) -> Response:
    _, result = _download(request, job_id)
    if result is None:
        return Response(json.dumps(NO_RESULT), status_code=404, media_type="application/json")
    body = json.dumps(result_geojson(result)).encode()
    return _attachment(body, "application/geo+json", f"{job_id}.geojson")


@router.get("/jobs/{job_id}/result.csv")
def job_csv(request: Request, job_id: str) -> Response:
    _, result = _download(request, job_id)
    if result is None:
        return Response(json.dumps(NO_RESULT), status_code=404, media_type="application/json")
    return _attachment(result_csv(result).encode(), "text/csv; charset=utf-8", f"{job_id}.csv")


@router.get("/jobs/{job_id}/report.pdf")
async def job_pdf(request: Request, job_id: str) -> Response:
    job, result = await run_in_threadpool(_download, request, job_id)
    if result is None:
        return Response(json.dumps(NO_RESULT), status_code=404, media_type="application/json")
    state = request.app.state
    body = await run_in_threadpool(render_pdf, result, state.catalogue, state.engine, job.finished)
    return _attachment(body, "application/pdf", f"{job_id}.pdf")
