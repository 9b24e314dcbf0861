"""Our loader (the ``mapserver load`` command, as a user runs it) against
``ogr2ogr -f PostgreSQL --config PG_USE_COPY YES``, on the same point CSV
(easting/northing) and polygon GeoPackage, in a fresh database.

    .venv/bin/python bench/load_bench.py [--points N] [--polygons M] [--repeat K] [--keep-db]
                                         [--profile] [--only points|parcels|shuffled]

Targets: ours no slower than ogr2ogr on both files (ratio <= 1.0), with all our
validation on, and a peak RSS under 1 GiB for the point file. Exits 1 when one is missed.
The same parcels shuffled are measured too, for comparison (no target): the generated
GeoPackage is in grid order, which our loader sends a window at a time and which slows
ogr2ogr's row-by-row index inserts. The input files are generated once (seeded) and
cached under var/bench/.
"""

import argparse
import json
import math
import os
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg2
import pyogrio
import shapely
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from loaders.pipeline import load_layer
from loaders.samples import source_path
from mapserver import runtime as runtime_
from mapserver.database import private_cluster, server_versions
from mapserver.settings import PROJECT_DIR, Settings

CACHE_DIR = PROJECT_DIR / "var" / "bench"
MAPSERVER = Path(sys.executable).with_name("mapserver")  # the console script users run
STOCKPORT = PROJECT_DIR / "layers" / "stockport"
SEED = 27700
EXTENT = (384_000.0, 382_000.0, 399_000.0, 396_000.0)  # EPSG:27700, around Stockport
MAX_RATIO = 1.0
MAX_POINTS_RSS_MB = 1024.0
OGR_SCHEMA = "bench"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`), for the children's peak RSS

STREET_NAMES = (
    "Wellington,Buxton,Church,Station,Mile End,Hillgate,Bramhall,Marple,Cheadle,Heaton,"
    "Reddish,Offerton,Hazel Grove,Romiley,Woodford,Adswood,Edgeley,Cale Green,Shaw Heath"
).split(",")
STREETS = [
    f"{name} {kind}"
    for name in STREET_NAMES
    for kind in ("Road", "Street", "Lane", "Avenue", "Close", "Drive", "Grove", "Way")
]
LAMP_TYPES = ["LED", "SON", "SOX", "CFL", "MH"]
WATTAGES = [18, 24, 35, 55, 70, 100, 150]
TENURES = ["Freehold", "Leasehold"]
PROPRIETORS = [
    "Private individual",
    "Limited Company or Public Limited Company",
    "Local Authority",
    "Housing Association/Society (Company)",
    "Corporate Body",
]


# --- input files ----------------------------------------------------------------------------------


def points_csv(n: int) -> Path:
    """N street lights as a CSV with easting/northing columns (cached)."""
    path = CACHE_DIR / f"points-{n}-seed{SEED}.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(SEED)
    x0, y0, x1, y1 = EXTENT
    frame = pd.DataFrame(
        {
            "asset_id": [f"SL{i:07d}" for i in range(1, n + 1)],
            "easting": rng.uniform(x0, x1, n),
            "northing": rng.uniform(y0, y1, n),
            "street": rng.choice(STREETS, n),
            "lamp_type": rng.choice(LAMP_TYPES, n),
            "wattage": rng.choice(WATTAGES, n),
            "install_year": rng.integers(1965, 2025, n),
        }
    )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.to_csv(partial, index=False, float_format="%.2f")
    partial.replace(path)
    return path


def parcels_gpkg(m: int) -> Path:
    """M land parcels: a grid of quadrilaterals with jittered, shared corners (cached)."""
    path = CACHE_DIR / f"parcels-{m}-seed{SEED}.gpkg"
    if path.exists():
        return path
    rng = np.random.default_rng(SEED)
    x0, y0, x1, y1 = EXTENT
    nx = math.ceil(math.sqrt(m * (x1 - x0) / (y1 - y0)))
    ny = math.ceil(m / nx)
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    gx, gy = np.meshgrid(x0 + dx * np.arange(nx + 1), y0 + dy * np.arange(ny + 1))
    gx = np.round(gx + rng.uniform(-0.25, 0.25, gx.shape) * dx, 2)
    gy = np.round(gy + rng.uniform(-0.25, 0.25, gy.shape) * dy, 2)
    row, col = np.divmod(np.arange(m), nx)
    ring_rows = np.stack([row, row, row + 1, row + 1, row], axis=1)
    ring_cols = np.stack([col, col + 1, col + 1, col, col], axis=1)
    rings = np.stack([gx[ring_rows, ring_cols], gy[ring_rows, ring_cols]], axis=-1)
    polygons = shapely.polygons(rings)
    assert shapely.is_valid(polygons).all(), "generated parcels must be valid"
    frame = gpd.GeoDataFrame(
        {
            "inspire_id": rng.permutation(m) + 20_000_000,
            "title_number": [f"GM{i:06d}" for i in rng.integers(0, 1_000_000, m)],
            "tenure": rng.choice(TENURES, m),
            "proprietor_category": rng.choice(PROPRIETORS, m),
        },
        geometry=polygons,
        crs="EPSG:27700",
    )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"partial-{path.name}")
    partial.unlink(missing_ok=True)
    pyogrio.write_dataframe(frame, partial, layer="parcels", driver="GPKG")
    partial.replace(path)
    return path


def shuffled_gpkg(ordered: Path) -> Path:
    """The same parcels in random order (cached): what our loader sorts whole, and what
    ogr2ogr's row-by-row GiST inserts take faster than rows in grid order."""
    path = ordered.with_name(ordered.stem + "-shuffled.gpkg")
    if path.exists():
        return path
    frame = gpd.read_file(ordered)
    frame = frame.iloc[np.random.default_rng(SEED).permutation(len(frame))]
    partial = path.with_name(f"partial-{path.name}")
    partial.unlink(missing_ok=True)
    pyogrio.write_dataframe(frame, partial, layer="parcels", driver="GPKG")
    partial.replace(path)
    return path


# --- catalogue and database -----------------------------------------------------------------------


def write_catalogue(directory: Path, points: Path, parcels: Path) -> None:
    """Stockport's catalogue (its profile names the boundary and other layers; only the
    boundary is loaded) plus the two bench layers."""
    for path in STOCKPORT.glob("*.yml"):
        shutil.copy(path, directory / path.name)
    common = {
        "theme": "Bench",
        "crs": "EPSG:27700",
        "attribution": "Synthetic data for the load benchmark.",
        "synthetic": True,
        "outside_boundary": "keep",
    }
    layers = {
        "bench_points": {
            "title": "Bench street lights",
            "geometry": "Point",
            "large": True,
            "key": "asset_id",
            "fields": [
                {"name": "asset_id", "label": "Asset id"},
                {"name": "street", "label": "Street"},
                {"name": "lamp_type", "label": "Lamp type"},
                {"name": "wattage", "label": "Wattage", "type": "integer"},
                {"name": "install_year", "label": "Installed", "type": "integer"},
            ],
            "source": {
                "path": str(points),
                "x_field": "easting",
                "y_field": "northing",
                "crs": "EPSG:27700",
            },
        },
        "bench_parcels": {
            "title": "Bench land parcels",
            "geometry": "MultiPolygon",
            "key": "inspire_id",
            "fields": [
                {"name": "inspire_id", "label": "INSPIRE id", "type": "integer"},
                {"name": "title_number", "label": "Title number"},
                {"name": "tenure", "label": "Tenure"},
                {"name": "proprietor_category", "label": "Proprietor category"},
            ],
            "source": {"path": str(parcels)},
        },
    }
    for layer_id, spec in layers.items():
        document = {"id": layer_id, **common, **spec}
        (directory / f"{layer_id}.yml").write_text(yaml.safe_dump(document, sort_keys=False))


@contextmanager
def bench_database(keep: bool) -> Iterator[str]:
    """A fresh database on DATABASE_URL's server, else on the private cluster; dropped after."""
    name = f"mapserver_bench_{secrets.token_hex(4)}"
    external = os.environ.get("DATABASE_URL")
    if external:
        admin = make_url(external).set(drivername="postgresql")
        admin_url = admin.render_as_string(hide_password=False)

        def execute(statement: str) -> None:
            conn = psycopg2.connect(admin_url, connect_timeout=5)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
            finally:
                conn.close()

        execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            if not keep:
                execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    cluster = private_cluster(Settings(database_url=None))
    started = cluster.start()  # False when it was already running: then we leave it running
    try:
        cluster.create_database(name)
        yield cluster.url(name)
    finally:
        if not keep:
            cluster.drop_database(name)
        if started:
            cluster.stop()


def execute(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def checkpoint(engine: Engine) -> None:
    """Flush the previous load's dirty pages so they do not land on the next timing."""
    try:
        execute(engine, "CHECKPOINT")
    except Exception:  # needs superuser or pg_checkpoint: best effort
        pass


def byte_compile() -> None:
    """Our packages byte-compiled, as pip leaves an installed package: an editable install
    (and PYTHONDONTWRITEBYTECODE, set on some machines) would compile them at every start."""
    subprocess.run([PROJECT_DIR / "scripts" / "bootstrap.sh", "compile"], check=True)


# --- measured runs --------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    record: dict[str, Any] = field(default_factory=dict)  # ours: its app.layer_versions row

    @property
    def load_s(self) -> float:
        """Time inside load_layer (recorded in the load's provenance)."""
        return float(self.record["details"]["seconds"])


def run_measured(args: list[str], env: dict[str, str]) -> Run:
    """Run a child to completion: wall time and its peak RSS. The RSS comes from GNU time,
    not wait4/RUSAGE_CHILDREN: on Linux a child forked from this (large) process inherits
    its high-water mark across exec, so ogr2ogr would seem as big as the bench itself."""
    with tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", rss.name, *args], capture_output=True, text=True, env=env
        )
        seconds = time.perf_counter() - start
        peak_kib = rss.read().split()[-1]
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}… failed ({done.returncode}):\n{done.stderr}")
    return Run(seconds=seconds, peak_rss_mb=int(peak_kib) / 1024)


@dataclass
class Case:
    layer: str
    path: Path
    rows: int
    ogr_options: list[str]
    max_rss_mb: float | None
    target: bool = True  # False: shown for comparison, not a target
    ours: list[Run] = field(default_factory=list)
    ogr: list[Run] = field(default_factory=list)
    rows_ours: int = 0
    rows_ogr: int = 0

    @property
    def ours_s(self) -> float:
        return statistics.median(r.seconds for r in self.ours)

    @property
    def ogr_s(self) -> float:
        return statistics.median(r.seconds for r in self.ogr)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.ogr_s

    @property
    def load_s(self) -> float:
        """Time inside load_layer: what a long-running process (the app, refresh) pays."""
        return statistics.median(r.load_s for r in self.ours)

    @property
    def ours_rss(self) -> float:
        return max(r.peak_rss_mb for r in self.ours)

    @property
    def ogr_rss(self) -> float:
        return max(r.peak_rss_mb for r in self.ogr)

    def misses(self) -> list[str]:
        found = []
        if not self.rows_ours == self.rows_ogr == self.rows:
            found.append(f"rows {self.rows_ours:,} vs {self.rows_ogr:,}")
        if self.ratio > MAX_RATIO and self.target:
            found.append(f"ratio > {MAX_RATIO:.1f}")
        if self.max_rss_mb is not None and self.ours_rss >= self.max_rss_mb:
            found.append(f"RSS >= {self.max_rss_mb:.0f} MB")
        return found


def ours_args(case: Case, profile: Path | None = None) -> list[str]:
    """``mapserver load LAYER FILE --quiet``; with ``profile``, the same under cProfile."""
    command = [str(MAPSERVER)] if MAPSERVER.exists() else [sys.executable, "-m", "mapserver.cli"]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "mapserver.cli"]
    return [*command, "load", case.layer, str(case.path), "--quiet"]


def ours_env(url: str, catalogue: Path, state: Path) -> dict[str, str]:
    return {
        **os.environ, "DATABASE_URL": url, "MAPSERVER_CATALOGUE_DIR": str(catalogue),
        "MAPSERVER_STATE_DIR": str(state), "PYTHONPATH": str(PROJECT_DIR),
    }  # fmt: skip


def last_load(engine: Engine, layer: str) -> dict[str, Any]:
    """The provenance of the layer's newest load: counts, time inside load_layer."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, rows_read, rows_loaded, rows_rejected, rows_repaired, details"
                " FROM app.layer_versions WHERE layer = :layer ORDER BY version DESC LIMIT 1"
            ),
            {"layer": layer},
        ).one()
    return dict(row._mapping)


def ogr_args(url: str, case: Case) -> tuple[list[str], dict[str, str]]:
    parsed = make_url(url)
    connection = (
        f"PG:host={parsed.host} port={parsed.port or 5432} dbname={parsed.database} "
        f"user={parsed.username}"
    )
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}  # kept off the command line
    fixed = "--config PG_USE_COPY YES -lco SPATIAL_INDEX=GIST -lco GEOMETRY_NAME=geom".split()
    args = ["ogr2ogr", "-f", "PostgreSQL", connection, str(case.path), *fixed]
    args += ["-nln", f"{OGR_SCHEMA}.{case.layer}", *case.ogr_options]
    return args, env


def prepare_database(url: str, catalogue: Path, state: Path) -> runtime_.Runtime:
    """Migrations and layer tables, the boundary loaded (untimed), the ogr2ogr schema."""
    runtime = runtime_.start(Settings(database_url=url, catalogue_dir=catalogue, state_dir=state))
    boundary = runtime.catalogue.layer(runtime.catalogue.council.boundary_layer)
    assert boundary.source and boundary.source.path
    load_layer(
        runtime.engine,
        boundary,
        source_path(boundary.source.path),
        reports_dir=state / "loads",
        run_by="load_bench",
    )
    execute(runtime.engine, f"CREATE SCHEMA IF NOT EXISTS {OGR_SCHEMA}")
    return runtime


def measure(case: Case, engine: Engine, url: str, env: dict[str, str], repeat: int) -> None:
    """Ours then ogr2ogr, ``repeat`` times; then both tables' row counts."""
    for attempt in range(1, repeat + 1):
        checkpoint(engine)
        run = run_measured(ours_args(case), env)
        run.record = last_load(engine, case.layer)
        case.ours.append(run)
        counts = {k: v for k, v in run.record.items() if k.startswith("rows_")}
        outside = run.record["details"].get("rows_outside_boundary")
        ended = sorted(run.record["details"]["steps_s"].items(), key=lambda step: step[1])
        steps = " ".join(f"{k} {v:.2f}" for k, v in ended)
        extra = f"in load_layer {run.load_s:.2f} s ({steps}) {json.dumps(counts)} outside {outside}"
        report(case, "ours", attempt, run, extra)
        execute(engine, f"DROP TABLE IF EXISTS {OGR_SCHEMA}.{case.layer}")
        checkpoint(engine)
        run = run_measured(*ogr_args(url, case))
        case.ogr.append(run)
        report(case, "ogr2ogr", attempt, run)
    case.rows_ours = count(engine, f"layers.{case.layer}")
    case.rows_ogr = count(engine, f"{OGR_SCHEMA}.{case.layer}")


def report(case: Case, tool: str, attempt: int, run: Run, extra: str = "") -> None:
    line = f"{run.seconds:7.2f} s {run.peak_rss_mb:7.1f} MB"
    print(f"  {case.layer:<13} {tool:<7} #{attempt}: {line}  {extra}".rstrip(), flush=True)


def profile(case: Case, engine: Engine, env: dict[str, str]) -> None:
    """One more run of ours under cProfile (not timed against ogr2ogr): where time goes."""
    out = CACHE_DIR / f"profile-{case.path.stem}.pstats"
    checkpoint(engine)
    run = run_measured(ours_args(case, out), env)
    print(f"\nprofile of ours on {case.path.name} ({run.seconds:.1f} s under cProfile): {out}")
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(r"loaders/", 20)
    stats.sort_stats("tottime").print_stats(20)


def print_table(cases: list[Case], repeat: int) -> None:
    header = (
        f"{'file':<40} {'rows':>10} {'ours (s)':>9} {'ogr2ogr (s)':>11} {'ours/ogr2ogr':>12} "
        f"{'in-process (s)':>14} {'ratio':>6} {'our peak RSS (MB)':>17} "
        f"{'ogr2ogr RSS (MB)':>16}  result"
    )
    print()
    print(header)
    print("-" * len(header))
    for case in cases:
        misses = case.misses()
        result = "PASS" if not misses else "FAIL: " + ", ".join(misses)
        if not case.target and not misses:
            result = "(no target: rows in random order)"
        print(
            f"{case.path.name:<40} {case.rows:>10,} {case.ours_s:>9.2f} {case.ogr_s:>11.2f} "
            f"{case.ratio:>12.2f} {case.load_s:>14.2f} {case.load_s / case.ogr_s:>6.2f} "
            f"{case.ours_rss:>17.1f} {case.ogr_rss:>16.1f}  {result}"
        )
    startup = statistics.median(run.seconds - run.load_s for c in cases for run in c.ours)
    print(
        f"\nmedian of {repeat} run(s). ours: `mapserver load LAYER FILE --quiet`, the whole "
        f"command (of which ~{startup:.2f} s outside load_layer: Python start-up, imports, "
        "catalogue, connection, migrations check); in-process: the load_layer call alone "
        "(from its provenance), and its ratio to ogr2ogr's whole run.\n"
        f"targets: ours/ogr2ogr <= {MAX_RATIO:.1f} on both; our peak RSS < "
        f"{MAX_POINTS_RSS_MB:.0f} MB on the points.\n"
        "ours: field types, key (duplicates), geometry type, validity (repaired), council "
        "boundary (checked, kept: outside_boundary: keep), rejects report, provenance, rows "
        "in Hilbert order, indexes and ANALYZE, atomic swap."
    )


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="rows in the point CSV")
    parser.add_argument("--polygons", type=int, default=150_000, help="parcels in the GeoPackage")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians are shown")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    parser.add_argument(
        "--profile", action="store_true", help="then profile one more run of ours per file"
    )
    parser.add_argument(
        "--only",
        choices=["points", "parcels", "shuffled"],
        help="measure one file only (a quicker check)",
    )
    options = parser.parse_args()

    byte_compile()
    print("input files (generated once, cached in var/bench/)…", flush=True)
    csv_options = "-oo X_POSSIBLE_NAMES=easting -oo Y_POSSIBLE_NAMES=northing"
    csv_options += " -oo KEEP_GEOM_COLUMNS=NO -a_srs EPSG:27700"
    wanted = {"points", "parcels", "shuffled"} if options.only is None else {options.only}
    # A file not measured is not generated either: the catalogue still names a path.
    points = Case(
        "bench_points",
        points_csv(options.points) if "points" in wanted else CACHE_DIR / "not-generated.csv",
        options.points,
        csv_options.split(),
        max_rss_mb=MAX_POINTS_RSS_MB,
    )
    ordered = parcels_gpkg(options.polygons) if wanted & {"parcels", "shuffled"} else None
    parcels = Case(
        "bench_parcels",
        ordered if ordered and "parcels" in wanted else CACHE_DIR / "not-generated.gpkg",
        options.polygons,
        ["-nlt", "PROMOTE_TO_MULTI"],
        max_rss_mb=None,
    )
    # The same layer from the same rows shuffled: for comparison (no target).
    shuffled = Case(
        "bench_parcels",
        shuffled_gpkg(ordered) if ordered and "shuffled" in wanted else CACHE_DIR / "none.gpkg",
        options.polygons,
        ["-nlt", "PROMOTE_TO_MULTI"],
        max_rss_mb=None,
        target=False,
    )
    chosen = {"points": points, "parcels": parcels, "shuffled": shuffled}
    cases = [case for name, case in chosen.items() if name in wanted]

    with (
        tempfile.TemporaryDirectory(prefix="load-bench-") as tmp,
        bench_database(options.keep_db) as url,
    ):
        catalogue, state = Path(tmp) / "catalogue", Path(tmp) / "state"
        catalogue.mkdir()
        write_catalogue(catalogue, points.path, parcels.path)
        runtime = prepare_database(url, catalogue, state)
        try:
            versions = server_versions(runtime.engine)
            gdal = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True)
            print(
                f"database {make_url(url).database}{' (kept)' if options.keep_db else ''}: "
                f"PostgreSQL {versions['postgresql']}, PostGIS {versions['postgis']}; "
                f"{gdal.stdout.strip()}; {os.cpu_count()} CPUs",
                flush=True,
            )
            env = ours_env(url, catalogue, state)
            for case in cases:
                measure(case, runtime.engine, url, env, options.repeat)
            if options.profile:
                for case in cases:
                    profile(case, runtime.engine, env)
        finally:
            runtime.close()

    print_table(cases, options.repeat)
    return 0 if not any(case.misses() for case in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
