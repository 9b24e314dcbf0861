"""Request ids, the request log, SQL comments, /metrics and /readyz over real HTTP."""

import asyncio
import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from mapserver import metrics, request_id
from mapserver.access import create_key
from mapserver.health import replica_state
from mapserver.logs import make_handler
from mapserver.observe import RequestObserver
from mapserver.settings import Settings


def samples(body: str) -> list:
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def test_request_id_is_honoured_when_sane_and_made_otherwise(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.1"}).headers["x-request-id"]
        == "edge-7f3a.1"
    )
    for hostile in (b"x */ DROP TABLE app.users; --", b"a%sb", "é".encode(), b"x" * 200, b""):
        answered = client.get("/healthz", headers={"X-Request-ID": hostile}).headers
        assert answered["x-request-id"].encode() != hostile
        assert request_id.SANE.fullmatch(answered["x-request-id"])
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_request_id_reaches_the_sql(client):
    sent: list[str] = []

    def capture(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        sent.append(statement)

    event.listen(Engine, "after_cursor_execute", capture)
    try:
        client.get("/ogc/collections/libraries/items", headers={"X-Request-ID": "sql-trace-1"})
    finally:
        event.remove(Engine, "after_cursor_execute", capture)
    assert sent and all(s.startswith("/* request_id=sql-trace-1 */ ") for s in sent)


def test_pg_stat_activity_shows_the_request_id(engine):
    token = request_id.current.set("activity-check-2")
    try:
        with engine.connect() as conn:
            query = conn.execute(
                text("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            ).scalar_one()
    finally:
        request_id.current.reset(token)
    assert query.startswith("/* request_id=activity-check-2 */ SELECT query")


def test_one_json_log_line_per_request(client, engine):
    stream = io.StringIO()
    handler = make_handler(Settings(log_format="json"), stream)
    logger = logging.getLogger("mapserver.requests")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    key = create_key(engine, "log test", "emergency")[1]
    try:
        headers = {"X-Request-ID": "log-1", "X-API-Key": key}
        client.get("/ogc/collections/hospitals/items?limit=1", headers=headers)
        client.get("/no/such/page", headers={"X-Request-ID": "log-2"})
        deadline = time.monotonic() + 5  # the line is written once the answer has gone
        while '"log-2"' not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    first, second = (
        next(line for line in lines if line["request_id"] == i) for i in ("log-1", "log-2")
    )
    assert first["message"] == "request" and first["method"] == "GET"
    assert first["path"] == "/ogc/collections/hospitals/items"
    assert first["route"] == "/ogc/collections/{collection_id}/items"
    assert first["status"] == 200 and first["role"] == "emergency"
    assert first["duration_ms"] >= 0 and first["level"] == "INFO" and first["time"]
    assert second["status"] == 404 and second["route"] == "unmatched"


def test_metrics_by_route_template(client):
    client.get("/ogc/collections/libraries/items?limit=2")
    client.get("/ogc/collections/pharmacies/items?limit=2")
    metrics.watch_tile_cache(lambda: (30, 10))
    body = client.get("/metrics")
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/plain")
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples(body.text)}
    route = "/ogc/collections/{collection_id}/items"
    assert (
        found[
            (
                "mapserver_http_requests_total",
                (("method", "GET"), ("route", route), ("status", "200")),
            )
        ]
        >= 2
    )  # noqa: E501
    assert (
        "mapserver_http_request_duration_seconds_count",
        (("method", "GET"), ("route", route)),
    ) in found  # noqa: E501
    assert not any("libraries" in dict(labels).get("route", "") for _, labels in found)
    assert found[("mapserver_db_pool_connections", (("state", "checked_out"),))] >= 0
    assert found[("mapserver_database_up", ())] == 1
    assert found[("mapserver_job_queue_depth", ())] >= 0
    assert found[("mapserver_layer_age_seconds", (("layer", "libraries"),))] > 0
    assert found[("mapserver_layer_version", (("layer", "libraries"),))] >= 1
    assert found[("mapserver_layer_overdue", (("layer", "libraries"),))] == 0
    assert found[("mapserver_tile_cache_hits_total", ())] == 30
    assert found[("mapserver_tile_cache_hit_ratio", ())] == 0.75


def test_readyz(client, engine):
    body = client.get("/readyz")
    assert body.status_code == 200, body.text
    assert body.json()["database"]["state"] == "ok"
    assert body.json()["migrations"]["state"] == "current"
    with engine.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM app.alembic_version")).scalar_one()
        conn.execute(text("UPDATE app.alembic_version SET version_num = '0001'"))
    try:
        stale = client.get("/readyz")
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE app.alembic_version SET version_num = :v"), {"v": head})
    assert stale.status_code == 503
    assert stale.json()["migrations"] == {
        "state": "not current", "database": ["0001"], "code": [head],
    }  # fmt: skip


def test_replica_checks(database_url):
    assert replica_state(database_url, 5)["state"] == "not a standby"  # the primary itself
    gone = replica_state("postgresql://nobody@127.0.0.1:1/none", 5)
    assert gone["state"] == "unreachable" and gone["error"]


@pytest.mark.parametrize("path", ["/metrics"])
def test_metrics_for_staff_or_internal_networks_only(outsider, path):
    """Served with metrics_networks = 10.0.0.0/8: this loopback client is outside."""
    base_url, engine = outsider
    with httpx.Client(base_url=base_url) as http:
        hidden = http.get(path)
        assert hidden.status_code == 404 and hidden.json() == http.get("/no-such").json()
        emergency = create_key(engine, "metrics emergency", "emergency")[1]
        assert http.get(path, headers={"X-API-Key": emergency}).status_code == 404
        staff = create_key(engine, "metrics staff", "staff")[1]
        assert http.get(path, headers={"X-API-Key": staff}).status_code == 200


def test_report_intake_and_outbox_once_their_tables_exist(client, engine):
    """Before the reports capability's tables exist the figures are left out; with them
    (stand-ins here, when this branch has none) they are counted."""
    with engine.connect() as conn:
        present = conn.execute(text("SELECT to_regclass('app.reports')")).scalar() is not None
    if not present:
        assert "mapserver_reports_received_total" not in client.get("/metrics").text
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE app.reports (created_at timestamptz)"))
            conn.execute(text("CREATE TABLE app.email_outbox (sent_at timestamptz)"))
            conn.execute(
                text("INSERT INTO app.reports VALUES (now()), (now() - interval '2 hours')")
            )  # noqa: E501
            conn.execute(text("INSERT INTO app.email_outbox VALUES (NULL), (now())"))
    try:
        found = {s.name: s.value for s in samples(client.get("/metrics").text)}
    finally:
        if not present:
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE app.reports, app.email_outbox"))
    assert found["mapserver_database_up"] == 1
    if not present:
        assert found["mapserver_reports_received_total"] == 2
        assert found["mapserver_reports_last_hour"] == 1
        assert found["mapserver_email_outbox_pending"] == 1
    assert found["mapserver_reports_received_total"] >= 0


def test_an_unhandled_error_answers_500_with_the_request_id(caplog):
    """No route of ours fails on purpose, so the middleware wraps an app that does."""

    async def broken(scope, receive, send) -> None:  # noqa: ANN001
        raise RuntimeError("boom")

    sent: list[dict] = []

    async def send(message) -> None:  # noqa: ANN001
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [(b"x-request-id", b"e-1")]}
    call = RequestObserver(broken)(scope, receive, send)
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API may own this thread's loop
        thread.submit(asyncio.run, call).result()
    assert sent[0]["status"] == 500 and (b"x-request-id", b"e-1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["request_id"] == "e-1"
    error = next(r for r in caplog.records if r.getMessage() == "unhandled error")
    assert error.exc_info and "boom" in str(error.exc_info[1])
