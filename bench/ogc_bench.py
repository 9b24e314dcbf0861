"""Our OGC API against tipg and a default pygeoapi, on the same PostGIS tables, over HTTP.

    .venv/bin/python bench/ogc_bench.py [--requests N] [--concurrency C] [--only TYPE]...
                                        [--max-seconds S] [--points N] [--parcels M] [--keep-db]
                                        [--gzip]

One database (`mapserver_bench_ogc`) gets 200,000 synthetic street lights and 130,000 land
parcels from loaders.synth, loaded by our loader. Four servers, one worker each, read it:
ours (`mapserver run`), ours again with its tile cache off (`ours-cold`: every tile request
renders the tile, as the first request of a tile does; tiles only), tipg (`uvicorn
tipg.main:app`) and pygeoapi with its stock `PostgreSQL` provider. Each request type runs
N times from C concurrent clients.
Targets: ours/tipg median <= 1.0 on every request type (for tiles: ours-cold, as tipg
caches nothing), our tiles' median < 20 ms (ours, warm: the bench asks for five tiles over
and over, as a map's users do) and pygeoapi/ours >= 3 on bbox queries. Exits 1 when one is
missed. The cold tiles' median is printed against 20 ms too, for information.
"""

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from layers.catalogue import Catalogue, load_catalogue
from loaders.pipeline import load_layer
from loaders.samples import source_path
from loaders.synth import generate
from loaders.synth_land import LAND_PARCELS
from loaders.synth_streets import STREETLIGHTS
from mapserver import runtime as runtime_
from mapserver.database import private_cluster, server_versions
from mapserver.settings import PROJECT_DIR, Settings

DATABASE = "mapserver_bench_ogc"
CATALOGUE = PROJECT_DIR / "layers" / "stockport"
WORK_DIR = PROJECT_DIR / "var" / "bench"
DATA_DIR = WORK_DIR / "ogc"  # generated files, one folder per scale
RUN_DIR = WORK_DIR / "ogc-run"  # state, configs, server logs, results of the last run
TIPG_VERSION = "1.6.1"
BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

MAX_RATIO_TIPG = 1.0
MAX_TILE_P50_MS = 20.0
MIN_RATIO_PYGEOAPI_BBOX = 3.0

# Central Stockport (CRS84); requests rotate over these positions so no answer is reused.
CENTRE = (-2.16, 53.40)
OFFSETS = ((0.0, 0.0), (0.012, 0.0), (-0.012, 0.0), (0.0, 0.008), (0.0, -0.008))
HALF_BOX = (0.0075, 0.0045)  # about 1 km x 1 km at 53.4 N
LAYERS = {  # layer -> (CQL2 attribute filter: property, value)
    "streetlights": ("lamp_type", "SOX"),
    "land_ownership": ("tenure", "Leasehold"),
}
KINDS = (
    "items-100",
    "items-1000",
    "bbox-100",
    "cql-attr",
    "cql-spatial",
    "item",
    "tile-z14",
    "tile-z16",
)


# --- data -----------------------------------------------------------------------------------------


def synthetic_files(catalogue: Catalogue, points: int, parcels: int) -> dict[str, Path]:
    """The two layers' source files from the generator, cached by scale (same seed: same file)."""
    files = {}
    for layer, scale in (
        ("streetlights", points / STREETLIGHTS),
        ("land_ownership", parcels / LAND_PARCELS),
    ):
        out = DATA_DIR / f"scale-{scale:.4g}"
        name = Path(catalogue.layer(layer).source.path).name  # type: ignore[union-attr]
        if not (out / name).is_file():
            print(f"  generating {layer} at scale {scale:.4g}…", flush=True)
            generate(catalogue, out, scale=scale, only=[layer])
        files[layer] = out / name
    return files


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def admin_execute(admin_url: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@contextmanager
def bench_database(keep: bool) -> Iterator[tuple[str, bool]]:
    """(url, existed) of the bench database on DATABASE_URL's server, else on the private
    cluster. An old one is dropped first unless --keep-db; it is dropped after unless --keep-db."""
    external = os.environ.get("DATABASE_URL")
    cluster = None if external else private_cluster(Settings(database_url=None))
    started = cluster.start() if cluster else False  # False: running already, left running
    admin = (
        make_url(external).set(drivername="postgresql").render_as_string(hide_password=False)
        if external
        else cluster.url("postgres")  # type: ignore[union-attr]
    )
    try:
        found = admin_execute(admin, "SELECT 1 FROM pg_database WHERE datname = %s", DATABASE)
        if found and not keep:
            admin_execute(admin, f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
        if not found or not keep:
            admin_execute(admin, f'CREATE DATABASE "{DATABASE}"')
        url = make_url(admin).set(database=DATABASE).render_as_string(hide_password=False)
        try:
            yield url, bool(found and keep)
        finally:
            if not keep:
                admin_execute(admin, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        if started and cluster:
            cluster.stop()


def live_sha256(engine: Engine, layer: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT sha256 FROM app.layer_versions WHERE layer = :l AND status = 'live'"),
            {"l": layer},
        ).scalar()


def prepare_data(url: str, files: dict[str, Path], state: Path) -> runtime_.Runtime:
    """Migrations and empty layer tables, the boundary, then the two layers (skipped when the
    kept database already holds these very files)."""
    runtime = runtime_.start(Settings(database_url=url, catalogue_dir=CATALOGUE, state_dir=state))
    catalogue, engine = runtime.catalogue, runtime.engine
    boundary = catalogue.layer(catalogue.council.boundary_layer)
    assert boundary.source and boundary.source.path
    to_load = [(boundary.id, source_path(boundary.source.path)), *files.items()]
    for layer_id, path in to_load:
        assert isinstance(path, Path)
        if live_sha256(engine, layer_id) == sha256(path):
            print(f"  {layer_id}: already loaded from {path.name}", flush=True)
            continue
        start = time.perf_counter()
        result = load_layer(
            engine,
            catalogue.layer(layer_id),
            path,
            reports_dir=state / "loads",
            run_by="ogc_bench",
            catalogue=catalogue,
        )
        print(
            f"  {layer_id}: {result.rows_loaded:,} rows loaded in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    return runtime


def vacuum(url: str, tables: list[str]) -> None:
    """VACUUM ANALYZE (outside a transaction): statistics and visibility map as in production."""
    conn = psycopg2.connect(make_url(url).render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"VACUUM ANALYZE layers.{table}")
    finally:
        conn.close()


def sample_ids(engine: Engine, table: str) -> list[int]:
    """Five ids spread over the table, for the one-item requests."""
    with engine.connect() as conn:
        ids = conn.execute(
            text(
                "SELECT percentile_disc(ARRAY[0.1, 0.3, 0.5, 0.7, 0.9]) WITHIN GROUP "
                f"(ORDER BY fid) FROM layers.{table}"
            )
        ).scalar_one()
    return list(ids)


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM layers.{table}")).scalar_one())


# --- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    name: str
    root: str  # the OGC API's base URL
    prefix: str  # of collection ids: tipg names them schema.table
    tile: str | None  # tile path after the collection, or None: no tiles
    health: str  # URL answering 200 once the server is ready
    tiles_only: bool = False  # measured on tile requests only
    process: subprocess.Popen[bytes] | None = None

    def collection(self, layer: str) -> str:
        return f"{self.root}/collections/{self.prefix}{layer}"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without settings of the servers under test, plus ``extra``."""
    prefixes = ("MAPSERVER_", "TIPG_", "PYGEOAPI_", "POSTGRES_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


def start(server: Server, args: list[str], env: dict[str, str], cwd: Path) -> None:
    """Start a server (its output goes to RUN_DIR/<name>.log) and wait until it answers."""
    log = RUN_DIR / f"{server.name}.log"
    with log.open("wb") as out:
        server.process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"{server.name} exited ({server.process.returncode}):\n{tail}")
        try:
            if httpx.get(server.health, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{server.name} did not answer {server.health} within 120 s (see {log})")


def stop(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def ours(url: str, cold: bool = False) -> tuple[Server, list[str], dict[str, str], Path]:
    """Our service; ``cold``: with its tile cache off, every tile is rendered."""
    port = free_port()
    name = "ours-cold" if cold else "ours"
    server = Server(
        name,
        f"http://127.0.0.1:{port}/ogc",
        "",
        "tiles/WebMercatorQuad/{z}/{y}/{x}",  # OGC: tileMatrix/tileRow/tileCol
        f"http://127.0.0.1:{port}/healthz",
        tiles_only=cold,
    )
    args = [sys.executable, "-m", "mapserver.cli", "run", "--port", str(port), "--no-samples"]
    env = clean_env(DATABASE_URL=url, MAPSERVER_STATE_DIR=str(RUN_DIR / name))
    if cold:
        env["MAPSERVER_TILE_CACHE_MB"] = "0"
    return server, args, env, PROJECT_DIR


def tipg(url: str) -> tuple[Server, list[str], dict[str, str], Path]:
    port = free_port()
    server = Server(
        "tipg",
        f"http://127.0.0.1:{port}",
        "layers.",
        "tiles/WebMercatorQuad/{z}/{x}/{y}",
        f"http://127.0.0.1:{port}/healthz",
    )
    args = [sys.executable, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1"]
    env = clean_env(DATABASE_URL=url, TIPG_NAME="tipg (bench)", TIPG_DB_SCHEMAS='["layers"]')
    return server, [*args, "--port", str(port)], env, RUN_DIR


def pygeoapi_config(url: str, port: int, catalogue: Catalogue) -> dict[str, Any]:
    """A minimal configuration with the stock PostgreSQL provider: default count behaviour and
    pool; the storage CRS named so that bbox and spatial filters are right (anchors.md)."""
    db = make_url(url)
    data = {
        "host": db.host,
        "port": db.port or 5432,
        "dbname": db.database,
        "user": db.username,
        "password": db.password,
        "search_path": ["layers", "public"],
    }
    resources = {
        layer: {
            "type": "collection",
            "title": catalogue.layer(layer).title,
            "description": catalogue.layer(layer).description or layer,
            "keywords": [layer],
            "links": [],
            "extents": {"spatial": {"bbox": list(catalogue.council.bbox), "crs": CRS84}},
            "providers": [
                {
                    "type": "feature",
                    "name": "PostgreSQL",
                    "data": data,
                    "id_field": "fid",
                    "table": layer,
                    "geom_field": "geom",
                    "storage_crs": BNG,
                }
            ],
        }
        for layer in LAYERS
    }
    contact = {"name": "bench", "email": "bench@example.org", "url": "https://example.org"}
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10000},  # as ours and tipg
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "pygeoapi (bench)",
                "description": "Default pygeoapi over the bench tables.",
                "keywords": ["bench"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": "https://example.org",
            },
            "license": {"name": "OGL-UK-3.0", "url": "https://example.org"},
            "provider": {"name": "bench", "url": "https://example.org"},
            "contact": {**contact, "role": "pointOfContact"},
        },
        "resources": resources,
    }


def pygeoapi(url: str, catalogue: Catalogue) -> tuple[Server, list[str], dict[str, str], Path]:
    port = free_port()
    server = Server(
        "pygeoapi", f"http://127.0.0.1:{port}", "", None, f"http://127.0.0.1:{port}/?f=json"
    )
    config, openapi = RUN_DIR / "pygeoapi.yml", RUN_DIR / "pygeoapi-openapi.yml"
    config.write_text(yaml.safe_dump(pygeoapi_config(url, port, catalogue), sort_keys=False))
    env = clean_env(PYGEOAPI_CONFIG=str(config), PYGEOAPI_OPENAPI=str(openapi))
    cli = str(Path(sys.executable).with_name("pygeoapi"))
    generated = subprocess.run(
        [cli, "openapi", "generate", str(config), "--output-file", str(openapi)],
        capture_output=True,
        text=True,
        env=env,
        cwd=RUN_DIR,
    )
    if generated.returncode != 0:
        raise SystemExit(f"pygeoapi openapi generate failed:\n{generated.stderr[-3000:]}")
    args = [sys.executable, "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--host", "127.0.0.1"]
    return server, [*args, "--port", str(port)], env, RUN_DIR


def ensure_tipg() -> str:
    """tipg in this venv (installed, pinned, when missing); its version."""
    try:
        return importlib.metadata.version("tipg")
    except importlib.metadata.PackageNotFoundError:
        print(f"installing tipg=={TIPG_VERSION} into {sys.prefix}…", flush=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", f"tipg=={TIPG_VERSION}"]
        subprocess.run(pip, check=True)
        return importlib.metadata.version("tipg")


# --- requests -------------------------------------------------------------------------------------


def positions() -> list[tuple[float, float]]:
    return [(CENTRE[0] + dx, CENTRE[1] + dy) for dx, dy in OFFSETS]


def box(lon: float, lat: float) -> tuple[float, float, float, float]:
    return (lon - HALF_BOX[0], lat - HALF_BOX[1], lon + HALF_BOX[0], lat + HALF_BOX[1])


def diamond(lon: float, lat: float) -> tuple[str, tuple[float, float, float, float]]:
    """A diamond about 1.2 km across (CRS84 WKT), and its bounding box."""
    dx, dy = HALF_BOX[0] * 1.2, HALF_BOX[1] * 1.2
    ring = [(lon - dx, lat), (lon, lat - dy), (lon + dx, lat), (lon, lat + dy), (lon - dx, lat)]
    wkt = "POLYGON((" + ",".join(f"{x:.6f} {y:.6f}" for x, y in ring) + "))"
    return wkt, (lon - dx, lat - dy, lon + dx, lat + dy)


def tiles(z: int) -> list[tuple[int, int]]:
    """The WebMercatorQuad tile (x, y) holding the centre, and its four neighbours."""
    n = 2**z
    x = int((CENTRE[0] + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(CENTRE[1]))) / math.pi) / 2 * n)
    return [(x, y), (x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]


def query(path: str, **params: object) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}"


@dataclass
class Expect:
    """What a features answer must hold (checked once per URL, before timing)."""

    url: str
    count_url: str | None = None  # the same query with limit=10000: full counts must agree
    bbox: tuple[float, float, float, float] | None = None  # every feature touches it
    prop: tuple[str, str] | None = None  # every feature has this value
    item: int | None = None


def requests(server: Server, layer: str, kind: str, ids: list[int]) -> list[Expect] | None:
    """The URLs of one request type on one server, rotated over; None: not offered."""
    items = f"{server.collection(layer)}/items"
    prop, value = LAYERS[layer]
    cql = {"filter-lang": "cql2-text"}
    if kind == "items-100":
        return [Expect(query(items, limit=100))]
    if kind == "items-1000":
        return [Expect(query(items, limit=1000))]
    if kind == "bbox-100":
        found = []
        for lon, lat in positions():
            bbox = ",".join(f"{v:.6f}" for v in box(lon, lat))
            found.append(
                Expect(
                    query(items, limit=100, bbox=bbox),
                    count_url=query(items, limit=10000, bbox=bbox),
                    bbox=box(lon, lat),
                )
            )
        return found
    if kind == "cql-attr":
        url = query(items, limit=100, filter=f"{prop}='{value}'", **cql)
        return [Expect(url, prop=(prop, value))]
    if kind == "cql-spatial":
        found = []
        for lon, lat in positions():
            wkt, bounds = diamond(lon, lat)
            cql_filter = f"S_INTERSECTS(geom,{wkt})"
            found.append(
                Expect(
                    query(items, limit=100, filter=cql_filter, **cql),
                    count_url=query(items, limit=10000, filter=cql_filter, **cql),
                    bbox=bounds,
                )
            )
        return found
    if kind == "item":
        return [Expect(f"{items}/{fid}", item=fid) for fid in ids]
    if server.tile is None:
        return None
    z = int(kind.removeprefix("tile-z"))
    tile = f"{server.collection(layer)}/{server.tile}"
    return [Expect(tile.format(z=z, x=x, y=y)) for x, y in tiles(z)]


def coordinates(geometry: dict[str, Any]) -> Iterator[tuple[float, float]]:
    def walk(node: Any) -> Iterator[tuple[float, float]]:
        if node and isinstance(node[0], int | float):
            yield float(node[0]), float(node[1])
        else:
            for child in node:
                yield from walk(child)

    yield from walk(geometry.get("coordinates") or [])


def touches(geometry: dict[str, Any], bbox: tuple[float, float, float, float]) -> bool:
    xs, ys = zip(*coordinates(geometry), strict=True)
    slack = 1e-6
    return not (
        max(xs) < bbox[0] - slack
        or min(xs) > bbox[2] + slack
        or max(ys) < bbox[1] - slack
        or min(ys) > bbox[3] + slack
    )


def check(expect: Expect, response: httpx.Response) -> tuple[int | None, list[str]]:
    """(features returned, problems) of one answer."""
    body = response.json()
    if expect.item is not None:
        same = str(body.get("id")) == str(expect.item)
        return 1, [] if same else [f"asked for item {expect.item}, got {body.get('id')!r}"]
    features = body.get("features", [])
    problems = []
    if expect.prop:
        name, value = expect.prop
        wrong = sum(1 for f in features if (f.get("properties") or {}).get(name) != value)
        if wrong:
            problems.append(f"{wrong} features without {name}={value!r}")
    if expect.bbox:
        outside = sum(1 for f in features if not touches(f["geometry"], expect.bbox))
        if outside:
            problems.append(f"{outside} features outside the query box")
    return len(features), problems


# --- measurement ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """One request type on one layer and one server."""

    layer: str
    kind: str
    server: str
    status: str = ""  # empty when measured; else why not ("n/a", "HTTP 500"…)
    features: int | None = None
    matched: int | None = None  # with limit=10000, for bbox and spatial filters
    tile_bytes: list[int] = field(default_factory=list)  # of each tile, when checked
    sequential_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds: server, db, client, machine

    @property
    def ok(self) -> bool:
        return not self.status and bool(self.latencies_ms)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def sequential_p50(self) -> float:
        return statistics.median(self.sequential_ms)


class Connection:
    """A bare HTTP/1.1 keep-alive connection, the timed load generator: httpx costs more CPU
    per request than some of the servers do, and shares the machine's CPUs with them."""

    def __init__(self, host: str, port: int, headers: bytes) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, int]:
        """(status, body bytes) of GET target."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        assert self.reader is not None
        self.writer.write(b"GET " + target.encode() + b" HTTP/1.1\r\n" + self.headers)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lines = head.lower().split(b"\r\n")
            fields = dict(line.split(b": ", 1) for line in lines[1:] if b": " in line)
            if b"content-length" in fields:
                size = len(await self.reader.readexactly(int(fields[b"content-length"])))
            elif fields.get(b"transfer-encoding") == b"chunked":
                size = 0
                while chunk := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    size += len(await self.reader.readexactly(chunk + 2)) - 2
                await self.reader.readuntil(b"\r\n")
            else:
                size = len(await self.reader.read())
                fields[b"connection"] = b"close"
        except BaseException:
            await self.close()
            raise
        if fields.get(b"connection") == b"close":
            await self.close()
        return status, size

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class Meter:
    """CPU seconds used so far: the server process, the bench database's backends (all
    servers' pools), this load generator, and the whole machine (busy, all CPUs)."""

    def __init__(self, admin_url: str) -> None:
        self.admin = psycopg2.connect(admin_url, connect_timeout=5)
        self.admin.autocommit = True

    def close(self) -> None:
        self.admin.close()

    def backends(self) -> dict[int, float]:
        with self.admin.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
            pids = [row[0] for row in cur.fetchall()]
        found = {}
        for pid in pids:
            try:
                found[pid] = process_cpu(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass
        return found

    def snapshot(self, server: Server) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        assert server.process is not None
        return {
            "server": process_cpu(server.process.pid),
            "db": self.backends(),
            "client": usage.ru_utime + usage.ru_stime,
            "machine": (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"),
        }

    def spent(self, before: dict[str, Any], server: Server) -> dict[str, float]:
        after = self.snapshot(server)
        db = sum(cpu - before["db"].get(pid, 0.0) for pid, cpu in after["db"].items())
        spent = {k: after[k] - before[k] for k in ("server", "client", "machine")}
        return {**spent, "db": db}


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def verify(
    client: httpx.AsyncClient, cell: Cell, expects: list[Expect], warmup: int
) -> list[str]:
    """Each URL answers 200 with what it should; a few more rounds warm the server up."""
    problems: Counter[str] = Counter()
    counts = set()
    for expect in expects:
        response = await client.get(expect.url)
        if response.status_code != 200:
            cell.status = f"HTTP {response.status_code}"
            return [f"{expect.url} answered {response.status_code}: {response.text[:200]}"]
        if cell.kind.startswith("tile"):
            cell.tile_bytes.append(len(response.content))
        else:
            features, found = await asyncio.to_thread(check, expect, response)
            counts.add(features)
            problems.update(found)
    cell.features = max(counts) if counts else None
    if expects[0].count_url:
        response = await client.get(expects[0].count_url)
        if response.status_code == 200:
            cell.matched = len(response.json().get("features", []))
    for round_ in range(warmup):
        await client.get(expects[round_ % len(expects)].url)
    return [f"{p} (in {n} of {len(expects)} answers)" for p, n in problems.items()]


def connection(url: str, gzip: bool) -> Connection:
    """A (lazily opened) connection to the server of ``url``."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port
    headers = (
        f"Host: {parts.netloc}\r\nUser-Agent: ogc_bench\r\nAccept: */*\r\n"
        f"Accept-Encoding: {'gzip' if gzip else 'identity'}\r\n\r\n"
    ).encode()
    return Connection(parts.hostname, parts.port, headers)


def target(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def sequential(cell: Cell, expects: list[Expect], gzip: bool, budget_s: float) -> None:
    """One client, one request at a time: up to 10 requests or budget_s, at least 3."""
    conn = connection(expects[0].url, gzip)
    deadline = time.perf_counter() + budget_s
    try:
        for i in range(10):
            if i >= 3 and time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            status, _ = await conn.get(target(expects[i % len(expects)].url))
            if status == 200:
                cell.sequential_ms.append((time.perf_counter() - start) * 1000)
    finally:
        await conn.close()


async def concurrent(
    meter: Meter,
    server: Server,
    cell: Cell,
    expects: list[Expect],
    options: argparse.Namespace,
) -> None:
    """``--concurrency`` clients, one connection each, share ``--requests`` requests (fewer
    when ``--max-seconds`` runs out); each one sends its next request when it has its answer."""
    targets = [target(e.url) for e in expects]
    conns = [connection(expects[0].url, options.gzip) for _ in range(options.concurrency)]
    issued = 0

    async def client_loop(conn: Connection) -> None:
        nonlocal issued
        while issued < options.requests and time.perf_counter() < deadline:
            path = targets[issued % len(targets)]
            issued += 1
            began = time.perf_counter()
            try:
                status, size = await conn.get(path)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                cell.errors[type(exc).__name__] += 1
                continue
            if status != 200:
                cell.errors[f"HTTP {status}"] += 1
                continue
            cell.latencies_ms.append((time.perf_counter() - began) * 1000)
            cell.bytes += size

    before = meter.snapshot(server)
    start = time.perf_counter()
    deadline = start + options.max_seconds
    try:
        await asyncio.gather(*(client_loop(conn) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    cell.seconds = time.perf_counter() - start
    cell.cpu = meter.spent(before, server)


def progress(cell: Cell) -> None:
    head = f"  {cell.layer:<14} {cell.kind:<11} {cell.server:<9}"
    if not cell.ok:
        print(f"{head} {cell.status or 'no answer'}", flush=True)
        return
    errors = f"  errors {dict(cell.errors)}" if cell.errors else ""
    print(
        f"{head} n={len(cell.latencies_ms):<4} p50 {cell.p50:7.1f} ms  p95 {cell.p95:7.1f} ms  "
        f"{cell.rate:6.1f}/s  (1 client: {cell.sequential_p50:.1f} ms){errors}",
        flush=True,
    )


async def measure_all(
    servers: list[Server],
    ids: dict[str, list[int]],
    kinds: list[str],
    meter: Meter,
    options: argparse.Namespace,
) -> tuple[list[Cell], list[str]]:
    """Every request type on every layer and server: checked and warmed up (httpx), then
    timed one at a time and under concurrency (bare connections)."""
    headers = {"Accept-Encoding": "gzip" if options.gzip else "identity"}
    client = httpx.AsyncClient(timeout=120, headers=headers)
    cells, warnings = [], []
    try:
        for layer in LAYERS:
            for kind in kinds:
                row = []
                for server in servers:  # each request type on all servers in turn: same drift
                    if server.tiles_only and not kind.startswith("tile"):
                        continue
                    cell = Cell(layer, kind, server.name)
                    row.append(cell)
                    expects = requests(server, layer, kind, ids[layer])
                    if expects is None:
                        cell.status = "n/a"
                        progress(cell)
                        continue
                    try:
                        problems = await verify(client, cell, expects, options.warmup)
                    except httpx.HTTPError as exc:
                        cell.status = type(exc).__name__
                        problems = [f"{expects[0].url}: {exc!r}"]
                    warnings += [f"{server.name} {layer} {kind}: {p}" for p in problems]
                    if cell.status:
                        if server.name.startswith("ours") and kind.startswith("tile"):
                            cell.status = f"n/a ({cell.status})"
                        progress(cell)
                        continue
                    await sequential(cell, expects, options.gzip, options.max_seconds / 5)
                    await concurrent(meter, server, cell, expects, options)
                    progress(cell)
                warnings += mismatches(row)
                cells += row
    finally:
        await client.aclose()
    return cells, warnings


def mismatches(row: list[Cell]) -> list[str]:
    """Servers disagreeing on feature counts, or on which tiles are empty (axis order)."""
    found = []
    tiles_ = {c.server: c.tile_bytes for c in row if c.tile_bytes}
    empty = {server for server, sizes in tiles_.items() if 0 in sizes}
    if empty and len(empty) < len(tiles_):
        shown = ", ".join(f"{server} {sizes}" for server, sizes in tiles_.items())
        found.append(f"{row[0].layer} {row[0].kind}: empty tiles on some servers: {shown}")
    for what in ("features", "matched"):
        values = {c.server: getattr(c, what) for c in row if getattr(c, what) is not None}
        if len(set(values.values())) > 1:
            shown = ", ".join(f"{server} {n:,}" for server, n in values.items())
            label = "features returned" if what == "features" else "features matched (limit 10000)"
            found.append(f"{row[0].layer} {row[0].kind}: {label} differ: {shown}")
    return found


# --- report ---------------------------------------------------------------------------------------


def print_tables(cells: list[Cell], options: argparse.Namespace) -> None:
    header = (
        f"{'layer':<14} {'request':<11} {'server':<9} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'req/s':>7} {'1-client p50':>12} {'KB/resp':>8} {'server CPU':>10} {'db CPU':>7} "
        f"{'features':>8}"
    )
    print()
    print(
        f"latency under {options.concurrency} concurrent clients (1-client p50: the same "
        "requests one at a time; server and db CPU: ms per request in the server process and in "
        "the database backends)"
    )
    print(header)
    print("-" * len(header))
    for cell in cells:
        head = f"{cell.layer:<14} {cell.kind:<11} {cell.server:<9}"
        if not cell.ok:
            print(f"{head} {cell.status or 'no answer':>4}")
            continue
        n = len(cell.latencies_ms)
        features = "" if cell.features is None else f"{cell.features:,}"
        print(
            f"{head} {n:>4} {cell.p50:>8.1f} {cell.p95:>8.1f} {cell.rate:>7.1f} "
            f"{cell.sequential_p50:>12.1f} {cell.bytes / n / 1024:>8.1f} "
            f"{cell.cpu['server'] * 1000 / n:>10.1f} {cell.cpu['db'] * 1000 / n:>7.1f} "
            f"{features:>8}"
        )
    print()
    header = (
        f"{'layer':<14} {'request':<11} {'ours p50':>9} {'cold p50':>9} {'tipg p50':>9} "
        f"{'pygeoapi p50':>12} {'ours/tipg':>9} {'cold/tipg':>9} {'pygeoapi/ours':>13} "
        f"{'ours/tipg 1-client':>18}"
    )
    print(
        "medians (ms) and ratios; tiles: ours = warm (tile cache on), cold = ours-cold (cache "
        "off: every request renders its tile)"
    )
    print(header)
    print("-" * len(header))
    for (layer, kind), row in grouped(cells).items():
        p50 = {name: f"{c.p50:.1f}" if c.ok else "n/a" for name, c in row.items()}
        print(
            f"{layer:<14} {kind:<11} {p50.get('ours', ''):>9} {p50.get('ours-cold', ''):>9} "
            f"{p50.get('tipg', ''):>9} {p50.get('pygeoapi', ''):>12} "
            f"{ratio(row, 'ours', 'tipg'):>9} {ratio(row, 'ours-cold', 'tipg'):>9} "
            f"{ratio(row, 'pygeoapi', 'ours'):>13} {ratio(row, 'ours', 'tipg', True):>18}"
        )


def grouped(cells: list[Cell]) -> dict[tuple[str, str], dict[str, Cell]]:
    rows: dict[tuple[str, str], dict[str, Cell]] = {}
    for cell in cells:
        rows.setdefault((cell.layer, cell.kind), {})[cell.server] = cell
    return rows


def ratio(row: dict[str, Cell], top: str, bottom: str, sequential: bool = False) -> str:
    a, b = row.get(top), row.get(bottom)
    if not (a and b and a.ok and b.ok):
        return "n/a"
    if sequential:
        return f"{a.sequential_p50 / b.sequential_p50:.2f}"
    return f"{a.p50 / b.p50:.2f}"


def _status(cell: Cell | None) -> str:
    return cell.status if cell else "missing"


def targets(cells: list[Cell]) -> list[tuple[str, list[str], bool]]:
    """(target, misses, judged) for each target; not judged: printed for information."""
    rows = grouped(cells)
    vs_tipg, warm, cold, vs_pygeoapi = [], [], [], []
    for (layer, kind), row in rows.items():
        tipg_, pygeoapi_ = row.get("tipg"), row.get("pygeoapi")
        ours_ = row.get("ours")
        # Tiles against tipg, which caches nothing: ours with our cache off.
        judged = row.get("ours-cold") if kind.startswith("tile") else ours_
        name = f"{layer} {kind}"
        if tipg_ and tipg_.ok:
            if not (judged and judged.ok):
                vs_tipg.append(f"{name} (ours {_status(judged)})")
            elif judged.p50 > MAX_RATIO_TIPG * tipg_.p50:
                vs_tipg.append(f"{name} {judged.p50 / tipg_.p50:.2f}")
        if kind.startswith("tile"):
            for misses, cell in ((warm, ours_), (cold, row.get("ours-cold"))):
                if not (cell and cell.ok):
                    misses.append(f"{name} ({_status(cell)})")
                elif cell.p50 >= MAX_TILE_P50_MS:
                    misses.append(f"{name} {cell.p50:.1f} ms (1 client {cell.sequential_p50:.1f})")
        if kind == "bbox-100" and pygeoapi_ and pygeoapi_.ok:
            if not (ours_ and ours_.ok):
                vs_pygeoapi.append(f"{name} (ours {_status(ours_)})")
            elif pygeoapi_.p50 < MIN_RATIO_PYGEOAPI_BBOX * ours_.p50:
                vs_pygeoapi.append(f"{name} {pygeoapi_.p50 / ours_.p50:.2f}x")
    found = [
        (
            f"every request type ours/tipg median <= {MAX_RATIO_TIPG:.1f} (tiles: cold)",
            vs_tipg,
            True,
        )
    ]
    if any(kind.startswith("tile") for _, kind in rows):
        found.append((f"our tiles median < {MAX_TILE_P50_MS:.0f} ms (warm)", warm, True))
        found.append((f"our tiles median < {MAX_TILE_P50_MS:.0f} ms (cold)", cold, False))
    if any(kind == "bbox-100" for _, kind in rows):
        found.append((f"bbox: pygeoapi/ours >= {MIN_RATIO_PYGEOAPI_BBOX:.0f}x", vs_pygeoapi, True))
    return found


def save(cells: list[Cell], warnings: list[str], about: dict[str, Any]) -> Path:
    path = RUN_DIR / "results.json"
    results = [
        {
            "layer": c.layer,
            "request": c.kind,
            "server": c.server,
            "status": c.status,
            "n": len(c.latencies_ms),
            "p50_ms": round(c.p50, 2) if c.ok else None,
            "p95_ms": round(c.p95, 2) if c.ok else None,
            "requests_per_s": round(c.rate, 1) if c.ok else None,
            "sequential_p50_ms": round(c.sequential_p50, 2) if c.sequential_ms else None,
            "features": c.features,
            "matched": c.matched,
            "errors": dict(c.errors),
            "cpu_ms_per_request": {
                k: round(v * 1000 / len(c.latencies_ms), 2) for k, v in c.cpu.items()
            }
            if c.ok
            else None,
        }
        for c in cells
    ]
    document = {"about": about, "results": results, "warnings": warnings}
    path.write_text(json.dumps(document, indent=1))
    return path


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per type and server")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--only", action="append", choices=KINDS, metavar="TYPE", help=f"one of {', '.join(KINDS)}"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=15.0, help="time limit of one type on one server"
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests before timing")
    parser.add_argument("--points", type=int, default=200_000, help="street lights to generate")
    parser.add_argument("--parcels", type=int, default=130_000, help="land parcels to generate")
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the database (and reuse it next time)"
    )
    parser.add_argument(
        "--gzip", action="store_true", help="ask for gzip (default: identity, no compression)"
    )
    options = parser.parse_args()
    kinds = [k for k in KINDS if not options.only or k in options.only]
    began = time.perf_counter()
    RUN_DIR.mkdir(parents=True, exist_ok=True)

    versions = {
        "tipg": ensure_tipg(),
        "pygeoapi": importlib.metadata.version("pygeoapi"),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "httpx": importlib.metadata.version("httpx"),
        "python": platform.python_version(),
    }
    print("input files (generated once, cached in var/bench/ogc/)…", flush=True)
    catalogue = load_catalogue(CATALOGUE)
    files = synthetic_files(catalogue, options.points, options.parcels)

    with bench_database(options.keep_db) as (url, existed):
        print(f"database {DATABASE}{' (kept, reused)' if existed else ''}…", flush=True)
        runtime = prepare_data(url, files, RUN_DIR / "state")
        try:
            vacuum(url, list(LAYERS))
            ids = {layer: sample_ids(runtime.engine, layer) for layer in LAYERS}
            rows = {layer: count_rows(runtime.engine, layer) for layer in LAYERS}
            db = server_versions(runtime.engine)
        finally:
            runtime.close()
        versions |= {"postgresql": db["postgresql"], "postgis": db["postgis"]}
        print(
            f"rows: {', '.join(f'{k} {v:,}' for k, v in rows.items())}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )

        servers: list[Server] = []
        try:
            for name, make in (
                ("ours", lambda: ours(url)),
                ("ours-cold", lambda: ours(url, cold=True)),
                ("tipg", lambda: tipg(url)),
                ("pygeoapi", lambda: pygeoapi(url, catalogue)),
            ):
                server, args, env, cwd = make()
                servers.append(server)
                began_server = time.perf_counter()
                start(server, args, env, cwd)
                print(
                    f"{name}: {server.root} (pid {server.process.pid}, ready in "  # type: ignore[union-attr]
                    f"{time.perf_counter() - began_server:.1f} s)",
                    flush=True,
                )
            print(
                f"\n{options.requests} requests per type and server, {options.concurrency} "
                f"concurrent clients (at most {options.max_seconds:.0f} s each), "
                f"Accept-Encoding: {'gzip' if options.gzip else 'identity'}",
                flush=True,
            )
            meter = Meter(make_url(url).set(database="postgres").render_as_string(False))
            try:
                cells, warnings = asyncio.run(measure_all(servers, ids, kinds, meter, options))
            finally:
                meter.close()
        finally:
            for server in servers:
                stop(server)

    print_tables(cells, options)
    if warnings:
        print("\nwarnings:")
        for warning in warnings:
            print(f"  {warning}")
    timed = [c for c in cells if c.ok]
    busiest = max((c.cpu["client"] / c.seconds for c in timed), default=0.0)
    seconds = sum(c.seconds for c in timed) or 1.0
    ours_cpu = sum(c.cpu["server"] + c.cpu["db"] + c.cpu["client"] for c in timed)
    others = max(0.0, sum(c.cpu["machine"] for c in timed) - ours_cpu)
    print(
        f"\nload generator: at most {busiest:.0%} of one CPU; other processes on the machine "
        f"used {others / seconds:.2f} CPUs on average while timing (of {os.cpu_count()}); "
        f"load average now {os.getloadavg()[0]:.2f}; server logs in {RUN_DIR}"
    )
    print()
    missed = False
    for target, misses, judged in targets(cells):
        missed |= judged and bool(misses)
        verdict = ("FAIL" if misses else "PASS") if judged else "INFO"
        shown = f"{'missed' if misses else 'met'}: " if not judged else ""
        print(f"{verdict}: {shown}{target}" + (f": {'; '.join(misses)}" if misses else ""))
    about = {"versions": versions, "rows": rows, "options": vars(options)}
    print(
        f"\nresults in {save(cells, warnings, about)}; {time.perf_counter() - began:.0f} s in all"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
