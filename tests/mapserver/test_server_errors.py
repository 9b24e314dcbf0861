"""Unhandled exceptions: a clean 500 (OGC body under /ogc), logged with the traceback, and
the same keep-alive connection answers the next request. The app is the factory's, served
by uvicorn on a real port, with a few extra routes that raise."""

import http.client
import json
import logging
import threading
import time

import pytest
import uvicorn
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route

from mapserver.app import create_app
from tests.conftest import free_port


def boom() -> None:
    raise RuntimeError("a bug in a route")


async def boom_in_starlette(_request: Request) -> None:
    raise RuntimeError("a bug in a route")


def meant() -> JSONResponse:
    return JSONResponse({"code": "Meant", "description": "a 500 on purpose"}, status_code=500)


@pytest.fixture(scope="module")
def port(runtime):
    app = create_app(runtime)
    app.add_api_route("/test/boom", boom)
    app.add_api_route("/test/meant", meant)
    # Before the /ogc mount, as our own OGC routes are; and a mounted Starlette app with
    # its own error middleware, as pygeoapi is.
    app.router.routes.insert(0, APIRoute("/ogc/test/boom", boom))
    mounted = Starlette(routes=[Route("/boom", boom_in_starlette)])
    app.router.routes.insert(0, Mount("/ogc/sub", mounted))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str, dict]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, response.getheader("content-type", ""), json.loads(body or b"{}")


@pytest.mark.parametrize(
    ("path", "field"),
    [("/test/boom", "detail"), ("/ogc/test/boom", "code"), ("/ogc/sub/boom", "code")],
)
def test_an_exception_is_a_clean_500_and_the_connection_stays(port, caplog, path, field):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        with caplog.at_level(logging.ERROR, logger="mapserver.server_errors"):
            status, content_type, body = get(conn, path)
        assert status == 500 and content_type == "application/json"
        assert field in body
        if field == "code":
            assert body["code"] == "InternalServerError"
        (record,) = [r for r in caplog.records if r.name == "mapserver.server_errors"]
        assert record.exc_info and "a bug in a route" in str(record.exc_info[1])
        socket = conn.sock
        status, _, body = get(conn, "/ogc/conformance?f=json")  # the same connection
        assert status == 200 and body["conformsTo"]
        assert conn.sock is socket, "the connection was closed after the 500"
    finally:
        conn.close()


def test_a_500_the_app_means_is_sent_as_it_is(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        status, _, body = get(conn, "/test/meant")
        assert status == 500 and body == {"code": "Meant", "description": "a 500 on purpose"}
        assert get(conn, "/healthz")[0] == 200
    finally:
        conn.close()
