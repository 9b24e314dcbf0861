"""The test harness: a real PostgreSQL + PostGIS (the private cluster, or the server of
DATABASE_URL), a fresh database per run, the real app served over real HTTP."""

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg2
import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import text
from sqlalchemy.engine import make_url

from loaders.samples import load_missing_samples
from mapserver import runtime as runtime_
from mapserver.app import create_app
from mapserver.database import private_cluster
from mapserver.settings import PROJECT_DIR, Settings
from tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_page

ARTIFACTS = PROJECT_DIR / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin_execute(url: str, statement: str) -> None:
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the test server (the private cluster, or the server of
    DATABASE_URL), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    external = os.environ.get("DATABASE_URL")
    if external:
        admin = make_url(external).set(drivername="postgresql")
        admin_url = admin.render_as_string(hide_password=False)
        _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    cluster = private_cluster(Settings(database_url=None))
    started = cluster.start()
    cluster.create_database(name)
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)
        if started:
            cluster.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this run."""
    with fresh_database("mapserver_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        port=free_port(),
        state_dir=tmp_path_factory.mktemp("state"),
        rate_limit_ip=1_000_000,  # the suite itself is one very busy client
        report_rate_limit=1_000_000,  # and sends many fault reports from one address
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[runtime_.Runtime]:
    rt = runtime_.start(settings)
    load_missing_samples(rt.engine, rt.catalogue, settings.state_dir / "loads")
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def engine(runtime: runtime_.Runtime):  # noqa: ANN201
    return runtime.engine


@contextmanager
def serve(runtime: runtime_.Runtime) -> Iterator[None]:
    """The runtime's app served by uvicorn on a real socket, in a background thread."""
    settings = runtime.settings
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime), host=settings.host, port=settings.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def base_url(runtime: runtime_.Runtime) -> Iterator[str]:
    with serve(runtime):
        yield runtime.settings.base_url


@pytest.fixture(scope="session")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def scalar(engine):  # noqa: ANN001, ANN201
    """Run one SQL query and return its single value."""

    def run(query: str, **params: object) -> object:
        with engine.connect() as conn:
            return conn.execute(text(query), params).scalar_one()

    return run


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, once for the whole run."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, base_url):  # noqa: ANN001, ANN201
    """A fresh browser page on the service; fails the test on any JavaScript error."""
    yield from browser_page(browser, base_url, viewport={"width": 1280, "height": 800})
