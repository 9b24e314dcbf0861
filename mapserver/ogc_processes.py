"""The gate in front of pygeoapi's OGC API – Processes.

Execution requests get the caller's role as the ``access_role`` input (whatever the
client sent there is replaced), so processes answer within the caller's access rights.
The analyses' least roles and input checks run here first, so that a caller without the
role gets 403 and bad inputs a 400 with the reason, even for an asynchronous job. Each
job records who started it: a job and its results are for them and staff (anyone else
gets 404), and the list of all jobs is for staff.
"""

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from analysis.jobs import record_owner, visible_job
from analysis.near import InputError
from analysis.processes import ROLE_INPUT, check_inputs, least_role
from mapserver.access import Principal, principal
from mapserver.features import ToPygeoapi, ogc_error
from mapserver.features_query import COMMON, OGCError, bad, unknown_parameters
from mapserver.login import csrf_ok
from mapserver.ogc import MOUNT
from mapserver.ogc_params import allowed_parameters

MAX_BODY = 1 << 20
router = APIRouter(include_in_schema=False)


class OwnedExecution(ToPygeoapi):
    """pygeoapi's execution, recording the caller as the owner of the job it creates before
    the client learns the job's address."""

    def __init__(self, request: Request, body: bytes, who: Principal) -> None:
        super().__init__(request.app.state.pygeoapi, body)
        self.engine = request.app.state.engine
        self.who = who

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"location" and b"/jobs/" in value:
                        job_id = value.decode("latin-1").rstrip("/").rsplit("/", 1)[-1]
                        await run_in_threadpool(record_owner, self.engine, job_id, self.who)
            await send(message)

        await super().__call__(scope, receive, recording)


@router.post(MOUNT + "/processes/{process_id}/execution")
async def execute(request: Request, process_id: str) -> Response:
    body = await request.body()
    who = principal(request)
    try:
        unknown_parameters(request.query_params, COMMON)
        if len(body) > MAX_BODY:
            raise OGCError(413, "PayloadTooLarge", "The execution request is too large.")
        try:
            document = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad("the execution request is not valid JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("inputs", {}), dict):
            raise bad("the execution request must be a JSON object with an inputs object")
        inputs = document.setdefault("inputs", {})
        inputs.pop(ROLE_INPUT, None)
        # A signed-in session's cookie is not enough: its page's CSRF token must come too.
        token = request.headers.get("x-csrf-token", "")
        if who.user_id is not None and not csrf_ok(request, token):
            raise OGCError(403, "Forbidden", "A signed-in request needs the page's X-CSRF-Token.")
        role = least_role(process_id)
        if role and not who.has(role):
            raise OGCError(
                403, "Forbidden", f"This process is for {role}: sign in, or use an API key."
            )
        try:
            await run_in_threadpool(check_inputs, process_id, who, inputs)
        except InputError as exc:
            raise bad(str(exc)) from None
    except OGCError as error:
        return ogc_error(error)
    inputs[ROLE_INPUT] = who.role or "public"
    return OwnedExecution(request, json.dumps(document).encode(), who)


@router.get(MOUNT + "/jobs")
async def jobs(request: Request) -> Response:
    if not principal(request).has("staff"):
        return ogc_error(OGCError(403, "Forbidden", "The list of jobs is for staff."))
    try:
        unknown_parameters(request.query_params, allowed_parameters("/jobs") or COMMON)
    except OGCError as error:
        return ogc_error(error)
    return ToPygeoapi(request.app.state.pygeoapi)


@router.api_route(MOUNT + "/jobs/{job_id}", methods=["GET", "DELETE"])
@router.get(MOUNT + "/jobs/{job_id}/results")
async def job(request: Request, job_id: str) -> Response:
    path = request.url.path.removeprefix(MOUNT)
    try:
        unknown_parameters(request.query_params, allowed_parameters(path) or COMMON)
    except OGCError as error:
        return ogc_error(error)
    found = await run_in_threadpool(
        visible_job, request.app.state.engine, job_id, principal(request)
    )
    if found is None:
        return ogc_error(OGCError(404, "NoSuchJob", f"No job {job_id!r}."))
    return ToPygeoapi(request.app.state.pygeoapi)
