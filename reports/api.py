"""The reports JSON API that the report page (and any client) uses.

- ``GET  /api/reports/categories``: what can be reported, with each category's questions.
- ``GET  /api/reports/check``: is a place inside the council, the asset it snaps to, and
  the open reports of the same category nearby ("Is this it?").
- ``POST /api/reports``: a new report (multipart form, up to 3 photos). Send an
  ``Idempotency-Key`` header (or field): a retry with it never makes a second report
  and gets the same answer.
- ``POST /api/reports/{reference}/me-too``: one more resident with the same problem.
- ``GET  /api/reports/{reference}``: a report's public view.
- ``POST /api/reports/{reference}/state``: staff change a report's state (API key with the
  staff role, or a staff session with its CSRF token in ``X-CSRF-Token``).
- ``GET  /reports/photos/{id}`` and ``/reports/photos/{id}/thumbnail``: photos (hidden ones
  for staff only).
"""

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from mapserver.access import principal
from mapserver.database import autocommit
from mapserver.login import csrf_ok
from reports import domain, photos, store
from reports.domain import State, TransitionError
from reports.service import (
    DEVICE_ID,
    EMAIL,
    IDEMPOTENCY_KEY,
    MAX_NAME,
    PHONE,
    Invalid,
    Reports,
    category_of,
    clean_text,
    coordinate,
    locate,
    photo_uploads,
    photos_written,
    reports_of,
    to_lonlat,
)

router = APIRouter(tags=["reports"])
logger = logging.getLogger(__name__)
# The largest request body a submit may have: three full photos and the text.
MAX_BODY = domain.MAX_PHOTOS * (domain.MAX_PHOTO_BYTES + 64 * 1024) + 256 * 1024


def invalid_response(exc: Invalid) -> JSONResponse:
    headers = {"Retry-After": str(exc.errors.get("retry_after", ""))} if exc.status == 429 else {}
    errors = {k: v for k, v in exc.errors.items() if k != "retry_after"}
    return JSONResponse(
        {"detail": "; ".join(errors.values()), "errors": errors},
        status_code=exc.status,
        headers=headers,
    )


def client_address(request: Request) -> str:
    return f"ip:{request.client.host if request.client else 'unknown'}"


def device_of(fields: dict[str, Any]) -> str | None:
    device = str(fields.get("device_id") or "")
    return f"device:{device}" if DEVICE_ID.match(device) else None


def spend(service: Reports, request: Request, fields: dict[str, Any]) -> None:
    wait = service.limit.spend(client_address(request), device_of(fields))
    if wait is not None:
        raise Invalid(
            {
                "limit": "You have sent a lot of reports in the last hour. Try again later.",
                "retry_after": str(wait),
            },
            status=429,
        )


async def read_form(request: Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Text fields (repeated ones as lists) and the uploaded photos (name, bytes)."""
    # Uploads are spooled to disk as they arrive, so the size is checked before reading:
    # a body of unknown length (chunked) is refused rather than read without limit.
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise Invalid({"form": "Send the form with a Content-Length."}, 411)
    if int(length) > MAX_BODY:
        raise Invalid({"photos": "That is too much to send: up to 3 photos of 10 MB."}, 413)
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise Invalid({"form": "Send the report as a form (multipart/form-data)."}, 415)
    form: FormData = await request.form(max_files=domain.MAX_PHOTOS + 1, max_fields=200)
    fields: dict[str, Any] = {}
    uploads = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if value.filename:  # an empty file input sends a nameless part
                data = await value.read(domain.MAX_PHOTO_BYTES + 1)
                uploads.append((value.filename[:100], data))
            continue
        if name in fields:
            previous = fields[name]
            fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[name] = value
    return fields, uploads


def _answers(fields: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("answer."): v for k, v in fields.items() if k.startswith("answer.")}


def _checkbox(value: Any) -> bool:  # noqa: ANN401
    return str(value).lower() in ("1", "true", "on", "yes")


def new_report(
    service: Reports, conn: Connection, fields: dict[str, Any], key: str | None
) -> tuple[store.NewReport, store.Ward]:
    """A resident's form, checked (Invalid, field -> message, for the first problem), and
    the ward it is in."""
    category = category_of(service, fields.get("category"))
    lon = coordinate(fields.get("lon"), "Longitude", -180, 180)
    lat = coordinate(fields.get("lat"), "Latitude", -90, 90)
    asset_id = clean_text(fields.get("asset_id"), "asset_id", "the asset", 60) or None
    where = locate(service, conn, category, lon, lat, asset_id)
    title = clean_text(fields.get("title"), "title", "a title", domain.MAX_TITLE, required=True)
    description = clean_text(
        fields.get("description"), "description", "a description", domain.MAX_DESCRIPTION
    )
    try:
        answers = category.check_answers(_answers(fields))
    except ValueError as exc:
        raise Invalid({"answers": str(exc)}) from None
    name = clean_text(fields.get("name"), "name", "your name", MAX_NAME) or None
    email = clean_text(fields.get("email"), "email", "your email address", 254) or None
    if email and not EMAIL.match(email):
        raise Invalid({"email": "Enter an email address like name@example.com."})
    phone = clean_text(fields.get("phone"), "phone", "your phone number", 20) or None
    if phone and not PHONE.match(phone):
        raise Invalid({"phone": "Enter a phone number like 0161 480 4949."})
    show_name = _checkbox(fields.get("show_name"))
    if show_name and not name:
        raise Invalid({"name": "Enter your name, or choose not to show it."})
    report = store.NewReport(
        category=category,
        point=where.point,
        title=title,
        description=description,
        answers=answers,
        asset_layer=category.asset_layer if where.asset_id else None,
        asset_id=where.asset_id,
        reporter_name=name,
        reporter_email=email,
        reporter_phone=phone,
        show_name=show_name,
        idempotency_key=key,
        device_id=str(fields["device_id"]) if device_of(fields) else None,
    )
    return report, where.ward


def report_links(service: Reports, reference: str, token: str | None) -> dict[str, str]:
    base = service.settings.base_url
    links = {"url": f"/reports/{reference}", "public_url": f"{base}/reports/{reference}"}
    if token:
        links["confirmation_url"] = f"/reports/{reference}/confirmation?token={token}"
        links["manage_url"] = f"{base}/reports/{reference}?token={token}"
    return links


def submit(
    service: Reports,
    request: Request,
    fields: dict[str, Any],
    uploads: list[tuple[str, bytes]],
    *,
    source: str = "web",
    limited: bool = True,
) -> tuple[store.Created, int]:
    """The whole submit, in a worker thread: a retry answers from the earlier report;
    otherwise check, clean photos, write them, then one statement writes the rest.
    ``limited=False`` skips the per-address limit, for callers with an API key (the
    per-key limit of mapserver.ratelimit applies to them)."""
    key = str(fields.get("idempotency_key") or request.headers.get("idempotency-key") or "")
    if key and not IDEMPOTENCY_KEY.match(key):
        raise Invalid(
            {"idempotency_key": "The idempotency key must be 16-100 letters, digits, - or _."}, 400
        )
    # Each statement commits by itself (see mapserver.database.autocommit): the reads need
    # no transaction and the write is one atomic statement (store.create_report), which
    # is committed before the answer, so the resident reads it back.
    with service.submits, autocommit(service.engine) as conn:
        if key and (earlier := store.find_by_idempotency_key(conn, key)):
            return earlier, 200
        if limited:
            spend(service, request, fields)
        new, ward = new_report(service, conn, fields, key or None)
        new = replace(new, source=source)
        cleaned = photo_uploads(service, [data for _, data in uploads], [n for n, _ in uploads])
        manage = f"{service.settings.base_url}/reports/{{reference}}?token={{token}}"
        with photos_written(service, cleaned) as records:
            created = store.create_report(
                conn, new, prefix=service.prefix, ward=ward, photos=records, report_url=manage
            )
    if created.replayed:  # the same key won a race meanwhile: these files are not needed
        photos.discard(service.photo_store, records)
        return created, 200
    return created, 201


@router.post("/api/reports", summary="Report a fault", status_code=201)
async def create(request: Request) -> Response:
    service = reports_of(request)
    try:
        fields, uploads = await read_form(request)
        created, status = await run_in_threadpool(submit, service, request, fields, uploads)
    except Invalid as exc:
        return invalid_response(exc)
    except (DBAPIError, OSError):
        # The database or the photo store failed: the transaction rolled back and the
        # photo files were removed, so a retry with the same key is safe.
        logger.exception("a report could not be saved")
        return JSONResponse(
            {"detail": "Your report could not be saved just now; nothing was kept. Send it again."},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    body = {"reference": created.reference, "replayed": created.replayed}
    body |= report_links(service, created.reference, created.token)
    if created.token:
        body["token"] = created.token
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/api/reports/categories", summary="What can be reported")
def categories(request: Request) -> JSONResponse:
    service = reports_of(request)
    return JSONResponse(
        [
            category.model_dump(exclude={"team"})
            | {"team": service.config.teams[category.team].name}
            for category in service.config.categories
        ]
    )


def _nearby_json(row: Row) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "title": row.title,
        "state": row.state,
        "state_label": State(row.state).label,
        "interest_count": row.interest_count,
        "asset_id": row.asset_id,
        "distance_m": round(row.distance),
        "created_at": row.created_at.isoformat(),
        "lon": row.lon,
        "lat": row.lat,
        "url": f"/reports/{row.reference}",
    }


@router.get("/api/reports/check", summary="Check a place before reporting")
def check(
    request: Request,
    lon: float = Query(..., ge=-180, le=180),
    lat: float = Query(..., ge=-90, le=90),
    category: str | None = Query(None, max_length=40),
    asset_id: str | None = Query(None, max_length=60),
) -> JSONResponse:
    """Inside the council or not (and whose place it is); the asset a pin snaps to; the
    open reports of the category on that asset or within 50 m."""
    service = reports_of(request)
    chosen = service.config.category(category) if category else None
    if category and chosen is None:
        return JSONResponse({"detail": f"No category {category!r}."}, status_code=400)
    with service.engine.connect() as conn:
        try:
            where = locate(service, conn, chosen, lon, lat, asset_id or None)
        except Invalid as exc:
            if "location" not in exc.errors:
                return invalid_response(exc)
            message = exc.errors["location"]
            return JSONResponse({"inside": False, "message": message, "nearby": []})
        rows = chosen and store.nearby_open(conn, chosen, where.point, asset_id=where.asset_id)
    nearby = [_nearby_json(row) for row in rows or []]
    return JSONResponse(
        {
            "inside": True,
            "message": f"Inside {service.catalogue.council.name}.",
            "lon": where.lon,
            "lat": where.lat,
            "asset_id": where.asset_id,
            "snapped": bool(where.asset_id) and not asset_id,
            "nearby": nearby,
        }
    )


def _report_or_404(conn: Any, reference: str, staff: bool) -> Row | None:  # noqa: ANN401
    report = store.get_report(conn, reference[:40])
    if report is None or (report.hidden and not staff):
        return None
    return report


def public_view(service: Reports, conn: Any, report: Row, staff: bool = False) -> dict[str, Any]:  # noqa: ANN401
    """What anyone may see of a report: no email or phone, the name only when the reporter
    chose to show it, no hidden photos, the location rounded (staff get it exact)."""
    category = service.config.category(report.category)
    grid = domain.PUBLIC_GRID_M
    x, y = (
        (report.x, report.y)
        if staff
        else (round(report.x / grid) * grid, round(report.y / grid) * grid)
    )
    lon, lat = to_lonlat(store.Point(x, y))
    pictures = store.photos(conn, report.id, hidden=staff)
    return {
        "reference": report.reference,
        "category": report.category,
        "category_name": category.name if category else report.category,
        "service_code": report.service_code,
        "state": report.state,
        "state_label": State(report.state).label,
        "title": report.title,
        "description": report.description,
        "reported_by": report.reporter_name if report.show_name else None,
        "ward": report.ward,
        "asset_id": report.asset_id,
        "asset_name": category.asset_name if category else "asset",
        "interest_count": report.interest_count,
        "duplicate_of": report.duplicate_reference,
        "created_at": report.created_at.isoformat(),
        "updated_at": report.updated_at.isoformat(),
        "fixed_at": _iso(report.fixed_at),
        "closed_at": _iso(report.closed_at),
        "lon": lon,
        "lat": lat,
        "history": [
            {
                "state": h.state,
                "state_label": State(h.state).label,
                "at": h.created_at.isoformat(),
                # Staff names are for staff; the public sees who in general.
                "by": h.changed_by if staff else ("Council" if h.user_id else h.changed_by),
            }
            for h in store.history(conn, report.id)
        ],
        "updates": [
            {
                "kind": u.kind,
                "body": u.body,
                "by": "Reporter" if u.kind == "resident" else "Council",
                "at": u.created_at.isoformat(),
            }
            for u in store.updates(conn, report.id, internal=staff)
        ],  # fmt: skip
        "photos": [
            {
                "id": p.id,
                "url": f"/reports/photos/{p.id}",
                "thumbnail": f"/reports/photos/{p.id}/thumbnail",
                "width": p.width,
                "height": p.height,
                "hidden": p.hidden,
            }
            for p in pictures
        ],  # fmt: skip
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@router.get("/api/reports/{reference}", summary="A report's public view")
def report_json(request: Request, reference: str) -> JSONResponse:
    service = reports_of(request)
    staff = principal(request).has("staff")
    with service.engine.connect() as conn:
        report = _report_or_404(conn, reference, staff)
        if report is None:
            return JSONResponse({"detail": "No report with that reference."}, status_code=404)
        return JSONResponse(public_view(service, conn, report, staff))


@router.post("/api/reports/{reference}/me-too", summary="I have this problem too")
async def me_too(request: Request, reference: str) -> JSONResponse:
    """One more resident affected: the interest count goes up and, with an email, they are
    subscribed to the report's news; no duplicate report is made."""
    service = reports_of(request)
    try:
        fields, _ = await read_form(request)
        email = clean_text(fields.get("email"), "email", "your email address", 254) or None
        if email and not EMAIL.match(email):
            raise Invalid({"email": "Enter an email address like name@example.com."})
        spend(service, request, fields)
    except Invalid as exc:
        return invalid_response(exc)

    def join() -> int | None:
        with service.engine.begin() as conn:
            report = _report_or_404(conn, reference, staff=False)
            return store.me_too(conn, report.id, email) if report else -1

    count = await run_in_threadpool(join)
    if count == -1:
        return JSONResponse({"detail": "No report with that reference."}, status_code=404)
    if count is None:
        return JSONResponse({"detail": "That report is no longer open."}, status_code=409)
    return JSONResponse(
        {"reference": reference, "interest_count": count, "subscribed": bool(email)}
    )


def staff_actor(request: Request) -> store.Actor | None:
    who = principal(request)
    return store.Actor(who.name, who.user_id) if who.has("staff") else None


@router.post("/api/reports/{reference}/state", summary="Staff: change a report's state")
async def change_state(request: Request, reference: str) -> JSONResponse:
    service = reports_of(request)
    actor = staff_actor(request)
    who = principal(request)
    if actor is None:
        return JSONResponse({"detail": "Staff only."}, status_code=403)
    if who.user_id is not None and not csrf_ok(request, request.headers.get("x-csrf-token", "")):
        return JSONResponse(
            {"detail": "Send the session's CSRF token in X-CSRF-Token."}, status_code=403
        )
    try:
        body = await request.json()
        new = State(str(body.get("state")))
        note = clean_text(body.get("note"), "note", "a note", domain.MAX_UPDATE) or None
    except (ValueError, AttributeError):
        states = ", ".join(s.value for s in State)
        return JSONResponse(
            {"detail": f"Send JSON {{state, note}}; state one of {states}."}, status_code=400
        )

    def apply() -> Row | None:
        with service.engine.begin() as conn:
            report = store.get_report(conn, reference[:40])
            return report and store.change_state(conn, report.id, new, actor, note)

    try:
        report = await run_in_threadpool(apply)
    except TransitionError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    if report is None:
        return JSONResponse({"detail": "No report with that reference."}, status_code=404)
    return JSONResponse({"reference": report.reference, "state": report.state})


def _photo(request: Request, photo_id: int, thumbnail: bool) -> Response:
    service = reports_of(request)
    with service.engine.connect() as conn:
        found = store.photo(conn, photo_id)
    staff = principal(request).has("staff")
    if found is None or ((found.hidden or found.report_hidden) and not staff):
        return JSONResponse({"detail": "No such photo."}, status_code=404)
    data = service.photo_store.get(found.thumbnail_key if thumbnail else found.store_key)
    if data is None:
        return JSONResponse({"detail": "No such photo."}, status_code=404)
    private = staff or found.hidden
    return Response(
        data,
        media_type=found.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store" if private else "public, max-age=3600",
            "Content-Security-Policy": "default-src 'none'",
        },
    )


@router.get("/reports/photos/{photo_id}", summary="A report's photo", include_in_schema=False)
def photo(request: Request, photo_id: int) -> Response:
    return _photo(request, photo_id, thumbnail=False)


@router.get("/reports/photos/{photo_id}/thumbnail", include_in_schema=False)
def thumbnail(request: Request, photo_id: int) -> Response:
    return _photo(request, photo_id, thumbnail=True)
