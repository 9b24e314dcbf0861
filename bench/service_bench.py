"""Load across the whole service as deployed: nginx in front of N app processes, a
PostgreSQL primary and, for some runs, a streaming replica serving the reads.

    .venv/bin/python bench/service_bench.py                      # 2 and 4 workers, ± replica
    .venv/bin/python bench/service_bench.py --seconds 30 --concurrency 32
    .venv/bin/python bench/service_bench.py --config 2 --config 2+replica

It starts its own servers on free 127.0.0.1 ports (tests/cluster/harness.py: initdb +
pg_basebackup, ``mapserver run`` per process, Debian's nginx with deploy/nginx), loads
the sample layers once, then for each configuration runs ``--concurrency`` clients for
``--seconds`` against nginx, each request drawn from :data:`ROUTES` by weight (a flood
event: mostly the map and its tiles). It prints, per route, requests, throughput, p50 and
p95 (ms) and errors; per run, the share of reads the replica answered and nginx's tile
cache hits; and each run's throughput against the first. The load generator runs on the
same machine as everything else, so figures are for this machine as a whole.
"""

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.harness import Service  # noqa: E402

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
# Stockport, in lon/lat: where the random boxes and tiles fall.
WEST, SOUTH, EAST, NORTH = -2.25, 53.35, -2.05, 53.45
SEARCHES = ["library", "bramhall", "marple", "hazel grove", "cheadle", "SJ 89 90", "reddish"]


@dataclass(frozen=True)
class Route:
    name: str
    weight: float
    make: Callable[[random.Random, "Inputs"], str]  # the path (and query) to ask for
    method: str = "GET"
    body: Callable[[random.Random], dict] | None = None  # form fields of a POST


@dataclass
class Inputs:
    tiles: list[str]  # z/y/x of tiles where street lights are


def _bbox(rnd: random.Random, size: float = 0.01) -> str:
    x, y = rnd.uniform(WEST, EAST - size), rnd.uniform(SOUTH, NORTH - size)
    return f"{x:.5f},{y:.5f},{x + size:.5f},{y + size * 0.6:.5f}"


# A flood: residents open the map (its page and many tiles), look at the flood layers
# and search for their street. Adding a route is one entry here, e.g. once the reports
# API exists: Route("report submission", 3, lambda r, i: "/reports", "POST", report_form).
C = "/ogc/collections"
ROUTES = [
    Route("map page", 4, lambda r, i: "/"),
    Route("tiles", 50, lambda r, i: f"{C}/streetlights/tiles/WebMercatorQuad/{r.choice(i.tiles)}"),
    Route("items bbox", 16, lambda r, i: f"{C}/planning_applications/items?bbox={_bbox(r)}"),
    Route("items flood zones", 8, lambda r, i: f"{C}/flood_zones/items?bbox={_bbox(r, 0.05)}"),
    Route(
        "items filter",
        6,
        lambda r, i: f"{C}/libraries/items?filter=name%20LIKE%20%27%25Library%25%27",
    ),
    Route("search", 10, lambda r, i: f"/api/search?q={r.choice(SEARCHES)}"),
    Route("collection", 6, lambda r, i: f"{C}/flood_zones"),
]


def pick_tiles(primary_url: str, count: int = 600) -> list[str]:
    """Tiles at z14-16 under street lights (dense areas weigh more, as on a real map)."""
    with psycopg2.connect(primary_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(geom, 4326) AS p"
            ' FROM layers."streetlights" ORDER BY md5(fid::text) LIMIT %s) s',
            (count * 3,),
        )
        points = cur.fetchall()
    rnd = random.Random(27700)
    tiles = {WEB_MERCATOR.tile(x, y, rnd.choice([14, 15, 16])) for x, y in points}
    return [f"{t.z}/{t.y}/{t.x}" for t in sorted(tiles)[:count]]


@dataclass
class Tally:
    latencies: dict[str, list[float]]
    errors: dict[str, int]
    databases: dict[str, int]
    cache: dict[str, int]
    seconds: float = 0.0
    cpu: dict[str, float] | None = None  # CPU seconds each part used while counted


async def load(
    service: Service, inputs: Inputs, seconds: float, concurrency: int, seed: int, warmup: float
) -> Tally:
    """``concurrency`` clients for ``warmup`` (not counted: pools fill, PROJ sets up) and
    then ``seconds``."""
    tally = Tally(defaultdict(list), defaultdict(int), defaultdict(int), defaultdict(int))
    weights = [route.weight for route in ROUTES]
    counting_from = time.monotonic() + warmup
    deadline = counting_from + seconds

    async def client(n: int) -> None:
        rnd = random.Random(seed * 1000 + n)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as http:
            while time.monotonic() < deadline:
                route = rnd.choices(ROUTES, weights)[0]
                path = route.make(rnd, inputs)
                data = route.body(rnd) if route.body else None
                started = time.perf_counter()
                try:
                    response = await http.request(route.method, path, data=data)
                except httpx.HTTPError:
                    if time.monotonic() >= counting_from:
                        tally.errors[route.name] += 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if time.monotonic() < counting_from:
                    continue
                if response.status_code >= 400:
                    tally.errors[route.name] += 1
                    continue
                tally.latencies[route.name].append(elapsed)
                if found := re.search(
                    r'db;desc="([^"]+)"', response.headers.get("server-timing", "")
                ):
                    tally.databases[found.group(1).rstrip("0123456789")] += 1
                if route.name == "tiles":
                    tally.cache[response.headers.get("x-cache-status", "none")] += 1

    async def measure_cpu() -> None:
        await asyncio.sleep(warmup)
        before = service.cpu()
        await asyncio.sleep(seconds)
        after = service.cpu()
        tally.cpu = {part: after[part] - before[part] for part in after}

    await asyncio.gather(measure_cpu(), *(client(n) for n in range(concurrency)))
    tally.seconds = time.monotonic() - counting_from
    return tally


def p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[94]
        if len(values) > 1
        else values[0]
    )


def report(name: str, tally: Tally) -> float:
    load_1m = os.getloadavg()[0]
    print(f"\n== {name}: {tally.seconds:.0f} s (machine load average {load_1m:.1f})")
    print(f"{'route':<20}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
    total = 0
    for route in ROUTES:
        values = tally.latencies.get(route.name, [])
        total += len(values)
        if not values:
            print(f"{route.name:<20}{0:>10}{'':>9}{'':>9}{'':>9}{tally.errors[route.name]:>8}")
            continue
        print(
            f"{route.name:<20}{len(values):>10}{len(values) / tally.seconds:>9.1f}"
            f"{statistics.median(values):>9.1f}{p95(values):>9.1f}{tally.errors[route.name]:>8}"
        )
    everything = [v for values in tally.latencies.values() for v in values]
    throughput = total / tally.seconds
    print(
        f"{'all':<20}{total:>10}{throughput:>9.1f}{statistics.median(everything):>9.1f}"
        f"{p95(everything):>9.1f}{sum(tally.errors.values()):>8}"
    )
    reads = sum(tally.databases.values())
    if reads:
        print(
            "reads answered by: "
            + ", ".join(f"{k} {v / reads:.0%}" for k, v in sorted(tally.databases.items()))
        )
    tiles = sum(tally.cache.values())
    if tiles:
        print(f"tiles from nginx's cache: {tally.cache.get('HIT', 0) / tiles:.0%} of {tiles}")
    if tally.cpu and total:
        # CPU per request does not depend on what else runs on the machine: the sizing figure.
        per_request = {part: used / total * 1000 for part, used in tally.cpu.items()}
        whole = sum(per_request.values())
        print(
            "CPU ms per request: "
            + ", ".join(f"{part} {ms:.1f}" for part, ms in per_request.items())
            + f"; all {whole:.1f} -> {1000 / whole:.0f} req/s per core of this machine"
        )
    return throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each run")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once")
    parser.add_argument("--warmup", type=float, default=5, help="seconds not counted first")
    parser.add_argument(
        "--config", action="append", default=None,
        help="N or N+replica (repeatable); default: 2, 4, 2+replica, 4+replica",
    )  # fmt: skip
    args = parser.parse_args()
    configs = args.config or ["2", "4", "2+replica", "4+replica"]
    plans = [(int(c.split("+")[0]), c.endswith("+replica")) for c in configs]
    print(
        f"service bench: {args.concurrency} clients, {args.seconds:g} s a run after"
        f" {args.warmup:g} s of warm-up, {os.cpu_count()} CPUs; routes (weight):"
    )
    print("  " + ", ".join(f"{r.name} ({r.weight:g})" for r in ROUTES))
    started = time.monotonic()
    service = Service(
        workers=plans[0][0],
        replica=any(replica for _, replica in plans),
        read_from_replica=plans[0][1],
    )
    print(f"servers up in {time.monotonic() - started:.0f} s (samples loaded)")
    results = []
    try:
        inputs = Inputs(pick_tiles(service.primary.url()))
        for n, (workers, replica) in enumerate(plans):
            name = f"{workers} workers" + (" + replica" if replica else ", primary only")
            if n:
                service.start_apps(workers, use_replica=replica)
            tally = asyncio.run(
                load(service, inputs, args.seconds, args.concurrency, n, args.warmup)
            )
            results.append((name, report(name, tally)))
    finally:
        service.close()
    print("\n== throughput against the first run")
    base = results[0][1]
    for name, throughput in results:
        print(f"{name:<28}{throughput:>8.1f} req/s  {throughput / base:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
