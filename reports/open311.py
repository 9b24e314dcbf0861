"""Open311 GeoReport v2 at ``/open311/v2``: the interchange councils' systems speak.

Discovery, services and their definitions (from ``reports.yml``), service requests
(read and, with an API key, create), tokens, and FixMyStreet's ``servicerequestupdates``
extension so that an external system can read updates and push its own back. XML, as
the specification requires, and JSON; errors in the specification's shape
(``[{"code": 400, "description": …}]`` or ``<errors><error>…``) with its status codes:
404 for what does not exist, 403 for a missing or wrong ``api_key``, 400 otherwise.

What is published is what the public report page shows: no reporter name unless the
reporter chose to show it, never an email address or phone number, coordinates snapped
to the public grid, hidden reports left out.
"""

import json
import xml.etree.ElementTree as ET  # noqa: S405 (we only build XML, never parse it)
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from sqlalchemy.engine import Connection, Row
from starlette.concurrency import run_in_threadpool

from mapserver.access import InvalidKey, Principal
from reports import domain, store
from reports.api import submit
from reports.categories import Category
from reports.domain import State, TransitionError
from reports.service import Invalid, Reports, reports_of

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

SPEC = "http://wiki.open311.org/GeoReport_v2"
MEDIA_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
MAX_SPAN = timedelta(days=90)  # the specification's longest start_date..end_date
MAX_REQUESTS = 1000  # …and its default page
# mySociety's statuses for pushed updates (their open311-adapter), to ours.
PUSHED_STATUS = {
    "open": State.OPEN,
    "reopen": State.OPEN,
    "investigating": State.INVESTIGATING,
    "for_triage": State.INVESTIGATING,
    "action_scheduled": State.ACTION_SCHEDULED,
    "planned": State.ACTION_SCHEDULED,
    "in_progress": State.IN_PROGRESS,
    "fixed": State.FIXED,
    "closed": State.CLOSED,
    "no_further_action": State.CLOSED,
    "not_councils_responsibility": State.NOT_RESPONSIBLE,
    "unable_to_fix": State.UNABLE_TO_FIX,
}


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# -- answering in XML or JSON ----------------------------------------------------------


def _fmt(fmt: str) -> str:
    if fmt not in MEDIA_TYPES:
        raise Open311Error(404, f"Unknown format {fmt[:20]!r}: use .xml or .json.")
    return fmt


def _xml(parent: ET.Element, tag: str, value: Any) -> None:  # noqa: ANN401 (JSON values)
    """``value`` under ``parent`` as ``<tag>``: lists repeat the singular element."""
    element = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, item in value.items():
            _xml(element, key, item)
    elif isinstance(value, list):
        singular = {"values": "value", "attributes": "attribute", "formats": "format"}
        for item in value:
            _xml(element, singular.get(tag, tag.rstrip("s")), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def answer(fmt: str, root: str, item: str | None, body: Any, status: int = 200) -> Response:  # noqa: ANN401
    """``body`` (a list of ``item`` elements under ``root``, or one object) in ``fmt``."""
    if fmt == "json":
        content = json.dumps(body, ensure_ascii=False, default=str)
        return Response(content, status, media_type=MEDIA_TYPES["json"])
    element = ET.Element(root)
    if item is None:
        for key, value in body.items():
            _xml(element, key, value)
    else:
        for entry in body:
            _xml_entry(element, item, entry)
    content = ET.tostring(element, encoding="unicode", xml_declaration=True)
    return Response(content, status, media_type=MEDIA_TYPES["xml"])


def _xml_entry(parent: ET.Element, tag: str, entry: dict[str, Any]) -> None:
    element = ET.SubElement(parent, tag)
    for key, value in entry.items():
        _xml(element, key, value)


def error(fmt: str, status: int, description: str) -> Response:
    body = [{"code": status, "description": description}]
    return answer(fmt if fmt in MEDIA_TYPES else "xml", "errors", "error", body, status)


def _refusal(fmt: str, exc: "Open311Error | Invalid") -> Response:
    if isinstance(exc, Open311Error):
        return error(fmt, exc.status, exc.description)
    return error(fmt, 400, str(exc))


def _guarded(fmt: str, work: Any) -> Response:  # noqa: ANN401 (a callable)
    try:
        return work(_fmt(fmt))
    except (Open311Error, Invalid) as exc:
        return _refusal(fmt, exc)


def _service(request: Request) -> Reports:
    try:
        return reports_of(request)
    except Exception:  # noqa: BLE001 (the HTTPException of a council without reports)
        raise Open311Error(404, "This council does not take reports through Open311.") from None


def _jurisdiction(service: Reports, params: Any) -> None:  # noqa: ANN401 (a mapping)
    given = params.get("jurisdiction_id")
    if given and given != service.catalogue.council.id:
        raise Open311Error(404, f"Unknown jurisdiction_id {given[:40]!r}.")


# -- discovery and services -----------------------------------------------------------


@router.get("/discovery.{fmt}", summary="Where the endpoints are")
def discovery(request: Request, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        council = service.catalogue.council
        contact = council.contact
        body = {
            "changeset": "2026-12-01T00:00:00Z",
            "contact": f"{contact.name}, {contact.email}" if contact else council.name,
            "key_service": f"API keys: ask {contact.email if contact else council.name}.",
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": f"{service.settings.base_url}/open311/v2",
                    "changeset": "2026-12-01T00:00:00Z",
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return answer(fmt, "discovery", None, body)

    return _guarded(fmt, work)


def _service_entry(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.service_code,
        "service_name": category.name,
        "description": category.description,
        "metadata": bool(category.questions),
        "type": "realtime",
        "keywords": ", ".join(category.keywords),
        "group": category.group,
    }


@router.get("/services.{fmt}", summary="What can be reported")
def services(request: Request, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        _jurisdiction(service, request.query_params)
        body = [_service_entry(category) for category in service.config.categories]
        return answer(fmt, "services", "service", body)

    return _guarded(fmt, work)


def _category(service: Reports, code: str) -> Category:
    category = service.config.by_service_code(code)
    if category is None:
        raise Open311Error(404, f"Unknown service_code {code[:40]!r}.")
    return category


@router.get("/services/{code}.{fmt}", summary="A service's extra questions")
def service_definition(request: Request, code: str, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        _jurisdiction(service, request.query_params)
        category = _category(service, code)
        attributes = [
            {
                "variable": True,
                "code": question.code,
                "datatype": question.datatype,
                "required": question.required,
                "datatype_description": "",
                "order": order,
                "description": question.description,
                "values": [{"key": v.key, "name": v.name} for v in question.values],
            }
            for order, question in enumerate(category.questions, start=1)
        ]
        body = {"service_code": category.service_code, "attributes": attributes}
        return answer(fmt, "service_definition", None, body)

    return _guarded(fmt, work)


# -- reading service requests ---------------------------------------------------------

# Public columns only; the location snapped to the public grid as the public layer is.
REQUEST_COLUMNS = f"""
SELECT r.id, r.reference, r.state, r.service_code, r.category, r.title, r.description,
       r.team, r.ward, r.created_at, r.updated_at,
       ST_X(ST_Transform(ST_SnapToGrid(r.geom, {domain.PUBLIC_GRID_M}), 4326)) AS lon,
       ST_Y(ST_Transform(ST_SnapToGrid(r.geom, {domain.PUBLIC_GRID_M}), 4326)) AS lat,
       (SELECT u.body FROM app.report_updates u WHERE u.report_id = r.id
          AND u.kind = 'public' AND NOT u.hidden ORDER BY u.id DESC LIMIT 1) AS status_notes,
       (SELECT p.id FROM app.report_photos p WHERE p.report_id = r.id AND NOT p.hidden
          ORDER BY p.update_id NULLS FIRST, p.position LIMIT 1) AS photo_id
FROM app.reports r
"""


def _w3c(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _request_entry(service: Reports, row: Row) -> dict[str, Any]:
    category = service.config.category(row.category)
    team = service.config.teams.get(row.team) if row.team else None
    base = service.settings.base_url
    return {
        "service_request_id": row.reference,
        "status": "open" if State(row.state).is_open else "closed",
        "status_notes": row.status_notes or State(row.state).label,
        "service_name": category.name if category else row.category,
        "service_code": row.service_code,
        "description": f"{row.title}\n\n{row.description}".strip(),
        "agency_responsible": team.name if team else service.catalogue.council.name,
        "service_notice": "",
        "requested_datetime": _w3c(row.created_at),
        "updated_datetime": _w3c(row.updated_at),
        "expected_datetime": None,
        "address": row.ward or "",
        "address_id": "",
        "zipcode": "",
        "lat": round(row.lat, 6),
        "long": round(row.lon, 6),
        "media_url": f"{base}/reports/photos/{row.photo_id}" if row.photo_id else "",
    }


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C date-time, e.g. 2026-01-01T00:00:00Z."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _codes(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _find_requests(service: Reports, params: Any) -> list[Row]:  # noqa: ANN401
    where, binds = ["NOT r.hidden"], {"limit": MAX_REQUESTS}
    ids = _codes(params.get("service_request_id"))
    if ids:  # overrides every other filter, as the specification says
        where.append("r.reference = ANY(:ids)")
        binds["ids"] = ids[:MAX_REQUESTS]
    else:
        start = _date(params.get("start_date"), "start_date")
        end = _date(params.get("end_date"), "end_date")
        if start and end and end < start:
            raise Open311Error(400, "end_date is before start_date.")
        if start and end and end - start > MAX_SPAN:
            raise Open311Error(400, "start_date and end_date may be at most 90 days apart.")
        end = end or (start + MAX_SPAN if start else datetime.now(UTC))
        start = start or end - MAX_SPAN
        where.append("r.created_at BETWEEN :start AND :end")
        binds.update(start=start, end=end)
        if codes := _codes(params.get("service_code")):
            where.append("r.service_code = ANY(:codes)")
            binds["codes"] = codes
        if statuses := _codes(params.get("status")):
            if not set(statuses) <= {"open", "closed"}:
                raise Open311Error(400, "status must be open, closed, or both.")
            if statuses == ["open"] or statuses == ["closed"]:
                where.append(("" if statuses == ["open"] else "NOT ") + "r.state = ANY(:open)")
                binds["open"] = [str(s) for s in domain.OPEN_STATES]
    sql = f"{REQUEST_COLUMNS} WHERE {' AND '.join(where)} ORDER BY r.created_at DESC LIMIT :limit"
    with service.engine.connect() as conn:
        return conn.execute(text(sql), binds).all()


@router.get("/requests.{fmt}", summary="Service requests (default: the last 90 days)")
async def requests_list(request: Request, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        _jurisdiction(service, request.query_params)
        rows = _find_requests(service, request.query_params)
        body = [_request_entry(service, row) for row in rows]
        return answer(fmt, "service_requests", "request", body)

    return await run_in_threadpool(_guarded, fmt, work)


def _one_request(service: Reports, reference: str) -> Row:
    with service.engine.connect() as conn:
        row = conn.execute(
            text(f"{REQUEST_COLUMNS} WHERE r.reference = :ref AND NOT r.hidden"),
            {"ref": reference},
        ).one_or_none()
    if row is None:
        raise Open311Error(404, f"No service request {reference[:40]!r}.")
    return row


@router.get("/requests/{reference}.{fmt}", summary="One service request (a list of one)")
async def request_one(request: Request, reference: str, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        _jurisdiction(service, request.query_params)
        row = _one_request(service, reference)
        return answer(fmt, "service_requests", "request", [_request_entry(service, row)])

    return await run_in_threadpool(_guarded, fmt, work)


@router.get("/tokens/{token}.{fmt}", summary="The request made under a token")
async def token(request: Request, token: str, fmt: str) -> Response:
    """Our POST answers with the service_request_id at once; a token is the
    ``Idempotency-Key`` a client sent with it, which finds the request again."""

    def work(fmt: str) -> Response:
        service = _service(request)
        with service.engine.connect() as conn:
            found = store.find_by_idempotency_key(conn, token)
        if found is None:
            raise Open311Error(404, "Unknown token.")
        body = [{"service_request_id": found.reference, "token": token}]
        return answer(fmt, "service_requests", "request", body)

    return await run_in_threadpool(_guarded, fmt, work)


# -- writing: new requests and pushed updates -----------------------------------------


@dataclass(frozen=True)
class Caller:
    principal: Principal
    form: dict[str, Any]


async def _keyed_form(request: Request, service: Reports, role: str | None) -> Caller:
    """The form (attribute[code] and attribute[code][] gathered) and the principal of its
    ``api_key``: 403 when it is missing, wrong, revoked, or below ``role``."""
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 (a malformed or oversized body)
        raise Open311Error(400, "The body must be application/x-www-form-urlencoded.") from None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise Open311Error(400, "Files are not accepted: give media_url instead.")
        if name.startswith("attribute[") and name.endswith("[]"):
            fields.setdefault(name[:-2], []).append(value)
        else:
            fields[name] = value
    key = str(fields.get("api_key") or request.query_params.get("api_key") or "")
    if not key:
        raise Open311Error(403, "api_key is required.")
    keys = request.app.state.keys
    try:
        principal = await run_in_threadpool(keys.lookup, key)
    except InvalidKey:
        raise Open311Error(403, "The api_key is not valid or was revoked.") from None
    if role and not principal.has(role):
        raise Open311Error(403, "This api_key may not do that.")
    _jurisdiction(service, fields)
    return Caller(principal, fields)


def _to_report_fields(category: Category, form: dict[str, Any]) -> dict[str, Any]:
    """An Open311 request in the shape of the residents' form (see reports.service)."""
    if not form.get("lat") or not form.get("long"):
        raise Open311Error(
            400, "lat and long are required (this endpoint does not geocode address_string)."
        )
    description = str(form.get("description") or "").strip()
    first_line = description.splitlines()[0] if description else ""
    title = (first_line or category.name)[: domain.MAX_TITLE]
    name = " ".join(str(form.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    fields: dict[str, Any] = {
        "category": category.id,
        "lon": form["long"],
        "lat": form["lat"],
        "title": title,
        "description": description,
        "name": name,
        "email": form.get("email") or "",
        "phone": form.get("phone") or "",
    }
    if device := form.get("device_id"):
        fields["device_id"] = device
    for name_, value in form.items():
        if name_.startswith("attribute[") and name_.endswith("]"):
            fields[f"answer.{name_[len('attribute[') : -1]}"] = value
    return fields


@router.post("/requests.{fmt}", summary="Create a service request (api_key required)")
async def create_request(request: Request, fmt: str) -> Response:
    try:
        fmt = _fmt(fmt)
        service = _service(request)
        caller = await _keyed_form(request, service, None)
        code = str(caller.form.get("service_code") or "")
        if not code:
            raise Open311Error(400, "service_code is required.")
        category = _category(service, code)
        fields = _to_report_fields(category, caller.form)
        created, status = await run_in_threadpool(
            submit, service, request, fields, [], source="open311", limited=False
        )
    except (Open311Error, Invalid) as exc:
        return _refusal(fmt, exc)
    body = [{"service_request_id": created.reference, "service_notice": "", "account_id": None}]
    return answer(fmt, "service_requests", "request", body, 201 if status == 201 else 200)


UPDATE_COLUMNS = """
SELECT u.id AS update_id, r.reference, coalesce(s.state, r.state) AS state, u.body,
       u.created_at, r.hidden
FROM app.report_updates u
JOIN app.reports r ON r.id = u.report_id
LEFT JOIN app.report_states s ON s.id = u.state_id
WHERE u.kind IN ('public', 'resident') AND NOT u.hidden AND NOT r.hidden
"""


def _update_entry(row: Row) -> dict[str, Any]:
    return {
        "update_id": str(row.update_id),
        "service_request_id": row.reference,
        "status": "open" if State(row.state).is_open else "closed",
        "updated_datetime": _w3c(row.created_at),
        "description": row.body,
        "media_url": "",
    }


@router.get("/servicerequestupdates.{fmt}", summary="Public updates (FixMyStreet extension)")
async def updates_list(request: Request, fmt: str) -> Response:
    def work(fmt: str) -> Response:
        service = _service(request)
        _jurisdiction(service, request.query_params)
        end = _date(request.query_params.get("end_date"), "end_date") or datetime.now(UTC)
        start = _date(request.query_params.get("start_date"), "start_date") or end - MAX_SPAN
        if end - start > MAX_SPAN or end < start:
            raise Open311Error(400, "start_date and end_date may be at most 90 days apart.")
        with service.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"{UPDATE_COLUMNS} AND u.created_at BETWEEN :start AND :end"
                    " ORDER BY u.id LIMIT :limit"
                ),
                {"start": start, "end": end, "limit": MAX_REQUESTS},
            ).all()
        body = [_update_entry(row) for row in rows]
        return answer(fmt, "service_request_updates", "request_update", body)

    return await run_in_threadpool(_guarded, fmt, work)


def _push_update(service: Reports, caller: Caller) -> int:
    """An external system's update: a new state when the status says so (the staff
    rules apply), else a public update; subscribers are told either way."""
    form = caller.form
    reference = str(form.get("service_request_id") or "")
    description = str(form.get("description") or "").strip()[: domain.MAX_UPDATE]
    status = str(form.get("status") or "").strip().lower()
    if not reference:
        raise Open311Error(400, "service_request_id is required.")
    if status and status not in PUSHED_STATUS:
        raise Open311Error(400, f"Unknown status {status[:40]!r}.")
    actor = store.Actor(caller.principal.name)
    with service.engine.begin() as conn:
        report = store.get_report(conn, reference)
        if report is None:
            raise Open311Error(404, f"No service request {reference[:40]!r}.")
        new = PUSHED_STATUS.get(status)
        if new is not None and new != State(report.state):
            try:
                store.change_state(conn, report.id, new, actor, description or None)
            except TransitionError as exc:
                raise Open311Error(400, str(exc)) from None
            return _latest_update_id(conn, report.id) or 0
        if not description:
            raise Open311Error(400, "description is required when the status does not change.")
        return store.add_update(conn, report.id, "public", description, actor)


def _latest_update_id(conn: Connection, report_id: int) -> int | None:
    return conn.execute(
        text("SELECT max(id) FROM app.report_updates WHERE report_id = :id"), {"id": report_id}
    ).scalar_one()


@router.post("/servicerequestupdates.{fmt}", summary="Push an update (FixMyStreet extension)")
async def push_update(request: Request, fmt: str) -> Response:
    try:
        fmt = _fmt(fmt)
        service = _service(request)
        caller = await _keyed_form(request, service, "staff")
        update_id = await run_in_threadpool(_push_update, service, caller)
    except (Open311Error, Invalid) as exc:
        return _refusal(fmt, exc)
    body = [{"update_id": str(update_id)}]
    return answer(fmt, "service_request_updates", "request_update", body)
