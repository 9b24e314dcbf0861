"""The residents' pages: report a fault (``/report``), the confirmation, and each report's
public page (``/reports/{reference}``) where the reporter, with their secret link, adds
an update or reopens it, and staff change its state.

Every page is rendered by Jinja with autoescaping on: user text is never marked safe.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from loaders.pipeline import live_versions
from mapserver.access import principal
from mapserver.login import csrf_ok
from mapserver.pages import basemap_config, map_config, page_context, templates
from reports import domain, store
from reports.api import public_view, read_form, spend, staff_actor
from reports.domain import State, TransitionError
from reports.service import Invalid, Reports, clean_text, photo_uploads, photos_written, reports_of

router = APIRouter(include_in_schema=False)
# The reporter's link carries a secret: never send it on to another site.
PRIVATE = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}


def report_page_config(request: Request, service: Reports) -> dict[str, Any]:
    """The map core's configuration (map.js), cut down to what a reporter needs: the
    boundary, the asset layers (switched on) and the public reports; plus the categories."""
    catalogue = service.catalogue
    with service.engine.connect() as conn:
        updated = {layer: row.finished_at for layer, row in live_versions(conn).items()}
    config = map_config(catalogue, principal(request), updated)
    assets = set(service.config.asset_layers)
    shown = assets | {catalogue.council.boundary_layer, "reports_public"}
    config["layers"] = [
        layer | {"visible": layer["id"] in assets or layer["id"] == "reports_public"}
        for layer in config["layers"]
        if layer["id"] in shown
    ]
    config["basemap"] = basemap_config(service.settings)
    config["report"] = {
        "snapMetres": domain.ASSET_SNAP_METRES,
        "nearbyMetres": domain.NEARBY_METRES,
        "maxPhotos": domain.MAX_PHOTOS,
        "maxPhotoBytes": domain.MAX_PHOTO_BYTES,
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "assetLayer": c.asset_layer,
                "assetIdField": c.asset_id_field,
                "assetName": c.asset_name,
            }
            for c in service.config.categories
        ],
    }
    return config


def grouped_categories(service: Reports) -> dict[str, list]:
    groups: dict[str, list] = {}
    for category in service.config.categories:
        groups.setdefault(category.group, []).append(category)
    return groups


@router.get("/report", response_class=HTMLResponse)
def report_form(request: Request) -> Response:
    service = reports_of(request)
    config = report_page_config(request, service)
    return templates.TemplateResponse(
        request,
        "report.html",
        {
            **page_context(request),
            "config": config,
            "groups": grouped_categories(service),
            "max_photos": domain.MAX_PHOTOS,
            "preset": {
                "category": request.query_params.get("category", "")[:40],
                "asset_id": request.query_params.get("asset_id", "")[:60],
            },
        },
        headers=PRIVATE,
    )


def _load(service: Reports, reference: str, staff: bool) -> tuple[Any, dict[str, Any]] | None:
    with service.engine.connect() as conn:
        report = store.get_report(conn, reference[:40])
        if report is None or (report.hidden and not staff):
            return None
        return report, public_view(service, conn, report, staff)


def _token_ok(service: Reports, report_id: int, token: str | None) -> bool:
    if not token:
        return False
    with service.engine.connect() as conn:
        return store.token_matches(conn, report_id, token[:100])


@router.get("/reports/{reference}/confirmation", response_class=HTMLResponse)
def confirmation(request: Request, reference: str, token: str = "") -> Response:
    service = reports_of(request)
    found = _load(service, reference, staff=False)
    if found is None or not _token_ok(service, found[0].id, token):
        return _not_found(request)
    report, view = found
    return templates.TemplateResponse(
        request,
        "report_confirmation.html",
        {
            **page_context(request),
            "report": view,
            "emailed": bool(report.reporter_email),
            "manage_url": f"{service.settings.base_url}/reports/{report.reference}?token={token}",
        },
        headers=PRIVATE,
    )


def _not_found(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "report_missing.html", page_context(request), status_code=404, headers=PRIVATE
    )


def _render(
    request: Request,
    service: Reports,
    reference: str,
    token: str | None,
    status: int = 200,
    error: dict[str, str] | None = None,
    body: str = "",
) -> Response:
    staff = principal(request).has("staff")
    found = _load(service, reference, staff)
    if found is None:
        return _not_found(request)
    report, view = found
    reporter = _token_ok(service, report.id, token)
    state = State(report.state)
    now = datetime.now(UTC)
    moves = sorted(domain.STAFF_TRANSITIONS[state], key=list(State).index) if staff else []
    map_link = f"/?lat={view['lat']:.5f}&lng={view['lon']:.5f}&zoom=18&layers=reports_public"
    return templates.TemplateResponse(
        request,
        "report_page.html",
        {
            **page_context(request),
            "report": view,
            "staff": staff,
            "moves": [(s.value, s.label) for s in moves],
            "reporter": reporter,
            "token": token if reporter else None,
            "can_update": reporter and domain.reporter_may_update(state, report.fixed_at, now),
            "can_reopen": reporter and domain.can_reopen(state, report.fixed_at, now),
            "error": error,
            "body": body,
            "map_link": map_link,
            "max_photos": domain.MAX_PHOTOS,
        },
        status_code=status,
        headers=PRIVATE,
    )


@router.get("/reports/{reference}", response_class=HTMLResponse)
def report_page(request: Request, reference: str, token: str | None = None) -> Response:
    return _render(request, reports_of(request), reference, token)


@router.post("/reports/{reference}/update")
async def resident_update(request: Request, reference: str) -> Response:
    """The reporter's update or reopening, from the form on their page (secret link)."""
    service = reports_of(request)
    token = None
    body = ""
    try:
        fields, uploads = await read_form(request)
        token = str(fields.get("token") or "")[:100]
        body = clean_text(
            fields.get("body"), "body", "your update", domain.MAX_UPDATE, required=True
        )
        reopen = fields.get("action") == "reopen"

        def apply() -> bool:
            with service.engine.connect() as conn:
                report = store.get_report(conn, reference[:40])
                if report is None or not store.token_matches(conn, report.id, token):
                    return False
            spend(service, request, fields)
            cleaned = photo_uploads(service, [d for _, d in uploads], [n for n, _ in uploads])
            with photos_written(service, cleaned) as records:
                with service.engine.begin() as conn:
                    store.resident_update(conn, report.id, body, reopen=reopen, photos=records)
            return True

        if not await run_in_threadpool(apply):
            return _not_found(request)
    except Invalid as exc:
        return _render(request, service, reference, token, exc.status, exc.errors, body)
    except TransitionError as exc:
        return _render(request, service, reference, token, 409, {"body": str(exc)}, body)
    return RedirectResponse(f"/reports/{reference}?token={token}#updates", 303, headers=PRIVATE)


@router.post("/reports/{reference}/state")
async def staff_state(request: Request, reference: str) -> Response:
    """A staff member changes the state from the report's page (session and CSRF token)."""
    service = reports_of(request)
    actor = staff_actor(request)
    if actor is None:
        return RedirectResponse(f"/login?next=/reports/{reference}", 303)
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        return Response("The form expired; go back and try again.", status_code=400)
    try:
        new = State(str(form.get("state", "")))
        note = clean_text(form.get("note"), "note", "a note", domain.MAX_UPDATE) or None
    except ValueError:
        return _render(request, service, reference, None, 400, {"state": "Choose a status."})
    except Invalid as exc:
        return _render(request, service, reference, None, 400, exc.errors)

    def apply() -> bool:
        with service.engine.begin() as conn:
            report = store.get_report(conn, reference[:40])
            if report is None:
                return False
            store.change_state(conn, report.id, new, actor, note)
            return True

    try:
        if not await run_in_threadpool(apply):
            return _not_found(request)
    except TransitionError as exc:
        return _render(request, service, reference, None, 409, {"state": str(exc)})
    return RedirectResponse(f"/reports/{reference}#history", 303)
