"""Staff triage: the queue (``/staff/reports``, with its map, GeoJSON and CSV), one
report with every action an inspector takes (``/staff/reports/{reference}``), and the
dashboard (``/staff/dashboard``).

Staff only: anyone else is sent to sign in (pages) or gets 404 (data). Every write is a
POST with the session's CSRF token, and goes through :mod:`reports.store`, which keeps
who and when.
"""

import csv
import io
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from mapserver.access import principal
from mapserver.export import safe_cell
from mapserver.login import csrf_ok
from mapserver.pages import page_context, templates
from reports import domain, queue, store
from reports.api import public_view
from reports.domain import State, TransitionError
from reports.service import Invalid, Reports, clean_text, reports_of

router = APIRouter(include_in_schema=False)
PRIVATE = {"Cache-Control": "private, no-store"}
ACTIONS = ("state", "team", "update", "duplicate", "redact", "photo")
DONE = {
    "state": "Status changed.",
    "team": "Team assigned.",
    "update": "Update added.",
    "duplicate": "Marked as a duplicate.",
    "redact": "Text redacted; the original is kept for audit.",
    "photo": "Photo visibility changed.",
}


class NotFound(Exception):
    pass


def _staff(request: Request) -> bool:
    return principal(request).has("staff")


def _sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)


def _no_data() -> JSONResponse:
    return JSONResponse({"detail": "Not found"}, status_code=404)


# -- the queue ------------------------------------------------------------------------


@router.get("/staff/reports")
def queue_page(request: Request, page: int = 1) -> Response:
    if not _staff(request):
        return _sign_in(request)
    service = reports_of(request)
    f = queue.parse_filter(request.query_params, service.config)
    page = max(1, min(page, 10_000))
    with service.engine.connect() as conn:
        total = queue.count(conn, f)
        rows = queue.queue(conn, f, offset=(page - 1) * queue.PAGE)
        wards = conn.execute(
            text("SELECT DISTINCT ward FROM app.reports WHERE ward IS NOT NULL ORDER BY 1")
        ).scalars()
        wards = list(wards)
    names = {c.id: c.name for c in service.config.categories}
    query = f.query()
    pages = max(1, -(-total // queue.PAGE))
    return templates.TemplateResponse(
        request,
        "staff_queue.html",
        {
            **page_context(request),
            "filter": f,
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "names": names,
            "labels": {s.value: s.label for s in State},
            "teams": service.config.teams,
            "selects": _selects(f, service, wards),
            "query": urlencode(query),
            "prev_url": f"?{urlencode({**query, 'page': page - 1})}" if page > 1 else None,
            "next_url": f"?{urlencode({**query, 'page': page + 1})}" if page < pages else None,
        },
        headers=PRIVATE,
    )


def _selects(f: queue.QueueFilter, service: Reports, wards: list[str]) -> list[tuple]:
    """The queue's filter menus: (name, label, [(value, text)], the value chosen)."""
    days = [(a, f"Older than {a} day{'' if a == '1' else 's'}") for a in queue.AGES]
    states = [(queue.OPEN, "Any open status"), ("all", "Any status")]
    return [
        ("state", "Status", states + [(s.value, s.label) for s in State], f.state or "all"),
        ("category", "Category", [("", "Any category")]
         + [(c.id, c.name) for c in service.config.categories], f.category or ""),
        ("ward", "Ward", [("", "Any ward")] + [(w, w) for w in wards], f.ward or ""),
        ("team", "Team", [("", "Any team")]
         + [(k, t.name) for k, t in service.config.teams.items()], f.team or ""),
        ("older_than", "Age", [("", "Any age"), *days], str(f.older_than or "")),
    ]  # fmt: skip


@router.get("/staff/reports.geojson")
def queue_geojson(request: Request) -> Response:
    """The filtered queue (first 2,000) for the queue's map."""
    if not _staff(request):
        return _no_data()
    service = reports_of(request)
    f = queue.parse_filter(request.query_params, service.config)
    with service.engine.connect() as conn:
        rows = queue.queue(conn, f, limit=2000)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(r.lon, 6), round(r.lat, 6)]},
            "properties": {"reference": r.reference, "title": r.title, "state": r.state},
        }
        for r in rows
    ]
    return JSONResponse({"type": "FeatureCollection", "features": features}, headers=PRIVATE)


@router.get("/staff/reports.csv")
def queue_csv(request: Request) -> Response:
    if not _staff(request):
        return _sign_in(request)
    service = reports_of(request)
    f = queue.parse_filter(request.query_params, service.config)
    out = io.StringIO()
    writer = csv.writer(out)
    with service.engine.connect() as conn:
        for row in queue.csv_rows(conn, f):
            writer.writerow([safe_cell(value) for value in row])
    headers = {**PRIVATE, "Content-Disposition": 'attachment; filename="reports.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# -- one report -----------------------------------------------------------------------


def _report_context(service: Reports, reference: str) -> dict[str, Any]:
    with service.engine.connect() as conn:
        report = store.get_report(conn, reference[:40])
        if report is None:
            raise NotFound
        view = public_view(service, conn, report, staff=True)
        context = {
            "report": view,
            "row": report,
            "nearby": queue.nearby(conn, report.id),
            "asset_history": queue.asset_history(conn, report.id),
        }
    state = State(report.state)
    moves = sorted(domain.STAFF_TRANSITIONS[state], key=list(State).index)
    return {
        **context,
        "moves": [(s.value, s.label) for s in moves if s != State.DUPLICATE],
        "labels": {s.value: s.label for s in State},
        "teams": service.config.teams,
        "response_templates": service.config.response_templates,
        "can_be_duplicate": state in domain.OPEN_STATES,
    }


def _render_report(
    request: Request,
    service: Reports,
    reference: str,
    status: int = 200,
    error: dict[str, str] | None = None,
) -> Response:
    try:
        context = _report_context(service, reference)
    except NotFound:
        return templates.TemplateResponse(
            request, "report_missing.html", page_context(request), status_code=404
        )
    done = DONE.get(request.query_params.get("done", ""))
    return templates.TemplateResponse(
        request,
        "staff_report.html",
        {**page_context(request), **context, "error": error, "done": done},
        status_code=status,
        headers=PRIVATE,
    )


@router.get("/staff/reports/{reference}")
def report_page(request: Request, reference: str) -> Response:
    if not _staff(request):
        return _sign_in(request)
    return _render_report(request, reports_of(request), reference)


def _note(service: Reports, form: Any, name: str, required: bool = False) -> str:  # noqa: ANN401
    """The note typed, or else the text of the chosen response template."""
    typed = clean_text(form.get(name), name, "the text", domain.MAX_UPDATE)
    chosen = service.config.response_template(str(form.get("template") or ""))
    note = typed or (chosen.text if chosen else "")
    if required and not note:
        raise Invalid({name: "Enter the text, or choose a reply."}, 400)
    return note


def _apply(service: Reports, request: Request, reference: str, form: Any) -> None:  # noqa: ANN401
    """One staff action on a report, in one transaction; Invalid, TransitionError or
    NotFound for what cannot be done."""
    who = principal(request)
    actor = store.Actor(who.name, who.user_id)
    action = str(form.get("action") or "")
    with service.engine.begin() as conn:
        report = store.get_report(conn, reference[:40])
        if report is None:
            raise NotFound
        if action == "state":
            try:
                new = State(str(form.get("state") or ""))
            except ValueError:
                raise Invalid({"state": "Choose a status."}, 400) from None
            store.change_state(conn, report.id, new, actor, _note(service, form, "note") or None)
        elif action == "team":
            team = str(form.get("team") or "")
            if team not in service.config.teams:
                raise Invalid({"team": "Choose a team."}, 400)
            note = f"Assigned to {service.config.teams[team].name}."
            store.assign_team(conn, report.id, team, note, actor)
        elif action == "update":
            kind = str(form.get("kind") or "")
            if kind not in ("public", "internal"):
                raise Invalid({"kind": "Choose who can see the update."}, 400)
            store.add_update(conn, report.id, kind, _note(service, form, "body", True), actor)
        elif action == "duplicate":
            original = store.get_report(conn, str(form.get("of") or "").strip()[:40])
            if original is None:
                raise Invalid({"of": "Enter the reference of the original report."}, 400)
            store.mark_duplicate(conn, report.id, original.id, actor)
        elif action == "redact":
            title = clean_text(form.get("title"), "title", "a title", domain.MAX_TITLE, True)
            description = clean_text(
                form.get("description"), "description", "the description", domain.MAX_DESCRIPTION
            )
            store.redact_report(conn, report.id, actor, title=title, description=description)
        elif action == "photo":
            photo_id = str(form.get("photo") or "")
            found = store.photo(conn, int(photo_id)) if photo_id.isdigit() else None
            if found is None or found.report_id != report.id:
                raise Invalid({"photo": "That photo is not on this report."}, 400)
            store.hide_photo(conn, found.id, actor, hidden=form.get("hidden") == "1")
        else:
            raise Invalid({"action": f"Choose one of: {', '.join(ACTIONS)}."}, 400)


@router.post("/staff/reports/{reference}")
async def report_action(request: Request, reference: str) -> Response:
    if not _staff(request):
        return _sign_in(request)
    service = reports_of(request)
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        return Response("The form expired; go back and try again.", status_code=400)
    try:
        await run_in_threadpool(_apply, service, request, reference, form)
    except NotFound:
        return _render_report(request, service, reference)
    except Invalid as exc:
        return _render_report(request, service, reference, exc.status, exc.errors)
    except TransitionError as exc:
        return _render_report(request, service, reference, 409, {"action": str(exc)})
    action = str(form.get("action"))
    return RedirectResponse(f"/staff/reports/{reference}?done={action}#result", 303)


# -- the dashboard --------------------------------------------------------------------


@router.get("/staff/dashboard")
def dashboard_page(request: Request, days: int = 90) -> Response:
    if not _staff(request):
        return _sign_in(request)
    service = reports_of(request)
    days = days if days in (7, 28, 90, 365) else 90
    with service.engine.connect() as conn:
        figures = queue.dashboard(conn, days)
    names = {c.id: c.name for c in service.config.categories}
    return templates.TemplateResponse(
        request,
        "staff_dashboard.html",
        {**page_context(request), **figures, "names": names, "choices": (7, 28, 90, 365)},
        headers=PRIVATE,
    )
