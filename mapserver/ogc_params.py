"""The query parameters of the paths pygeoapi answers itself; any other is a 400.

pygeoapi ignores parameters it does not know (``/ogc/collections?x=1`` answers 200), which
OGC API – Features /req/core/query-param-unknown forbids: a client's typo would silently
change nothing. Paths our own routes answer check their parameters there
(``features_query``); this gate wraps the pygeoapi mount only, so our routes that hand a
checked request to pygeoapi are not checked twice.
"""

import json
import re

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from mapserver.access import send_json
from mapserver.features_query import COMMON, OGCError, unknown_parameters

# Path under the mount -> the parameters it documents besides f and lang; None: not
# checked (pygeoapi's static files). Paths not listed take f and lang only.
DOCUMENTED: list[tuple[re.Pattern[str], set[str] | None]] = [
    (re.compile(r"/static/.*"), None),
    (re.compile(r"/openapi/?"), {"ui"}),
    (re.compile(r"/processes/?"), {"limit"}),
    (re.compile(r"/jobs/?"), {"limit", "offset"}),
]


def allowed_parameters(path: str) -> set[str] | None:
    for pattern, extra in DOCUMENTED:
        if pattern.fullmatch(path):
            return None if extra is None else COMMON | extra
    return COMMON


class KnownParameters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root, path = scope.get("root_path", ""), scope["path"]
            allowed = allowed_parameters(path.removeprefix(root) if root else path)
            if allowed is not None:
                try:
                    unknown_parameters(QueryParams(scope["query_string"]), allowed)
                except OGCError as error:
                    body = {"code": error.code, "description": error.description}
                    await send_json(send, error.status, json.dumps(body).encode())
                    return
        await self.app(scope, receive, send)
