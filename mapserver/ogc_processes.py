"""The gate in front of pygeoapi's OGC API – Processes.

Execution requests get the caller's role as the ``access_role`` input (whatever the
client sent there is replaced), so processes answer within the caller's access rights;
the list of all jobs is for staff (a job's own URL stays a capability link for whoever
started it).
"""

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from analysis.processes import LEAST_ROLE, ROLE_INPUT
from mapserver.access import principal
from mapserver.features import ToPygeoapi, ogc_error
from mapserver.features_query import COMMON, OGCError, bad, unknown_parameters
from mapserver.ogc import MOUNT
from mapserver.ogc_params import allowed_parameters

MAX_BODY = 1 << 20
router = APIRouter(include_in_schema=False)


@router.post(MOUNT + "/processes/{process_id}/execution")
async def execute(request: Request, process_id: str) -> Response:
    body = await request.body()
    least = LEAST_ROLE.get(process_id)
    if least and not principal(request).has(least):
        return ogc_error(OGCError(403, "Forbidden", f"The process {process_id} is for {least}."))
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
    except OGCError as error:
        return ogc_error(error)
    inputs = document.setdefault("inputs", {})
    inputs[ROLE_INPUT] = principal(request).role or "public"
    return ToPygeoapi(request.app.state.pygeoapi, json.dumps(document).encode())


@router.get(MOUNT + "/jobs")
async def jobs(request: Request) -> Response:
    if not principal(request).has("staff"):
        return ogc_error(OGCError(403, "Forbidden", "The list of jobs is for staff."))
    try:
        unknown_parameters(request.query_params, allowed_parameters("/jobs") or COMMON)
    except OGCError as error:
        return ogc_error(error)
    return ToPygeoapi(request.app.state.pygeoapi)
