"""A flood event: many residents report at once. Real app processes, a real PostgreSQL.

    .venv/bin/python bench/flood_bench.py [--residents 200] [--seconds 60] [--rate 150]
                                          [--workers 2] [--photo-share 0.5] [--restart]

A private PostgreSQL cluster (its own port and folder under var/bench/flood) gets a fresh
database with the sample layers; W app processes (`mapserver run`, one uvicorn worker
each, as behind nginx) serve it. R simulated residents, each with its own device id,
submit reports (pothole, road flooding, fly-tipping; a share with one 800x600 JPEG
photo) at random moments (a Poisson process of its own, whatever the answers take) so
that together they offer the target rate; each report has its own idempotency key, and
a failed or refused attempt (connection error, 5xx) is retried with the same key until
it is accepted. `--restart` restarts PostgreSQL halfway through the run.

Printed: offered and accepted reports, throughput, latency p50/p95/p99 of accepted
answers (the attempt that succeeded, and end to end with retries), retries, the CPU ms
per accepted report (app processes, PostgreSQL, this load generator) and the count
check: every accepted key is in the database exactly once, with the reference the
resident was given, and no report exists that no resident was told about. Targets
(issue #6): >= 150 reports/s at p95 < 300 ms on this 2-core machine, zero lost, zero
duplicated. There is no peer to run beside us (FixMyStreet cannot be installed here).
The load generator runs on the same two cores as the service and the database.
"""

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy import text

from loaders.samples import load_missing_samples
from mapserver import runtime as runtime_
from mapserver.database import private_cluster
from mapserver.settings import PROJECT_DIR, Settings

WORK_DIR = PROJECT_DIR / "var" / "bench" / "flood"
PG_PORT = 54391
DATABASE = "mapserver_bench_flood"
# Inside Stockport: a box around the town centre and Heaton Norris (lon, lat).
AREA = (-2.185, 53.400, -2.140, 53.425)
CATEGORIES = [
    ("pothole", {}),
    ("flooding_road", {"answer.water_entering_property": "no", "answer.depth": "ankle"}),
    ("fly_tipping", {"answer.waste_type": "household"}),
]
TARGET_RATE = 150.0
TARGET_P95_MS = 300.0


def photo() -> bytes:
    """An 800x600 JPEG with some texture (a flat colour would compress to nothing)."""
    image = Image.effect_noise((800, 600), 40).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


@dataclass
class Tally:
    offered: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # key -> reference
    latencies: list[float] = field(default_factory=list)  # the attempt that succeeded
    end_to_end: list[float] = field(default_factory=list)  # first try to success
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # what a failed attempt saw
    given_up: int = 0


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time (user + system) of a live process; ``children`` adds its exited children's."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / TICK


def postgres_seconds(postmaster: int) -> float:
    """The cluster's CPU time: the postmaster, its exited backends and the live ones."""
    live = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = open(f"/proc/{entry.name}/stat").read()  # noqa: SIM115
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                live += cpu_seconds(int(entry.name))
    return cpu_seconds(postmaster, children=True) + live


@dataclass
class CpuMeter:
    """CPU seconds of the app processes, PostgreSQL and this load generator over the run
    (what 2 cores give at most 2 s a second: the cost of a report whatever else runs)."""

    apps: list[int]
    data_dir: Path
    spent: dict[str, float] = field(default_factory=dict)

    def postmaster(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def sample(self) -> dict[str, float]:
        return {
            "app": sum(cpu_seconds(pid) for pid in self.apps),
            "postgres": postgres_seconds(self.postmaster()),
            "load": time.process_time(),
        }

    def begin(self) -> None:
        self.spent = {name: -used for name, used in self.sample().items()}

    def before_restart(self) -> None:
        """The old postmaster's time, kept: the new one counts from nothing."""
        self.spent["postgres"] += postgres_seconds(self.postmaster())

    def after_restart(self) -> None:
        self.spent["postgres"] -= postgres_seconds(self.postmaster())

    def end(self) -> dict[str, float]:
        return {name: used + self.spent[name] for name, used in self.sample().items()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def servers(settings: Settings, workers: int):
    """W `mapserver run` processes against the bench database, on ports of their own."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "MAPSERVER_STATE_DIR": str(settings.state_dir),
        "MAPSERVER_RATE_LIMIT_IP": "100000000",
        "MAPSERVER_REPORT_RATE_LIMIT": "100000000",
        "MAPSERVER_POOL_SIZE": "10",
        "PYTHONPATH": str(PROJECT_DIR),
    }
    ports = [free_port() for _ in range(workers)]
    logs = [open(WORK_DIR / f"server-{port}.log", "w") for port in ports]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mapserver.cli", "run", "--port", str(port), "--no-samples"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_DIR,
        )  # fmt: skip
        for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 90
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} did not start: see {WORK_DIR}")
                time.sleep(0.3)
        yield urls, [process.pid for process in processes]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


BOUNDARY = "floodbench" + uuid.uuid4().hex


def multipart(form: dict[str, str], image: bytes | None) -> list[bytes]:
    """A multipart/form-data body as the pieces to write (the photo is not copied)."""
    text_parts = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in form.items()
    )
    pieces = [text_parts.encode()]
    if image is not None:
        pieces += [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photos";'
            f' filename="flood.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode(),
            image,
            b"\r\n",
        ]
    return [*pieces, f"--{BOUNDARY}--\r\n".encode()]


class Refused(Exception):
    """An answer this client cannot read (not one the service sends)."""


class Keepalive:
    """One resident's HTTP/1.1 connection to one app process: a request written from
    ready-made pieces, the answer read by its Content-Length. Much cheaper than a general
    client (httpx spent ~8 ms of CPU a report, on the same cores as the service)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.used = 0.0

    def close(self) -> None:
        if self.streams:
            self.streams[1].close()
            self.streams = None

    async def post(
        self, path: str, headers: dict[str, str], body: list[bytes]
    ) -> tuple[int, bytes]:
        # uvicorn closes a connection idle for 5 s: open a new one rather than lose a try.
        if self.streams and (self.streams[0].at_eof() or time.monotonic() - self.used > 4):
            self.close()
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        self.used = time.monotonic()
        reader, writer = self.streams
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        length = sum(len(piece) for piece in body)
        writer.writelines([f"{head}Content-Length: {length}\r\n\r\n".encode(), *body])
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status, fields = int(lines[0].split()[1]), {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if b"content-length" not in fields:
            raise Refused("an answer without Content-Length")
        answer = await reader.readexactly(int(fields[b"content-length"]))
        if fields.get(b"connection") == b"close":
            self.close()
        return status, answer


async def resident(
    number: int, urls: list[str], tally: Tally, args: argparse.Namespace, end: float,
    image: bytes,
) -> None:  # fmt: skip
    rng = random.Random(number)
    device = f"flood{number:05d}{uuid.uuid4().hex[:8]}"
    connections = {url: Keepalive(url) for url in urls}
    mean_wait = args.residents / args.rate  # all residents together offer the target rate
    # Arrivals on their own clock (a Poisson process), not after each answer: a slow
    # answer must not lower the rate offered.
    due = time.monotonic() + rng.uniform(0, mean_wait)
    while True:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() >= end:
            break
        due += rng.expovariate(1 / mean_wait)
        category, answers = rng.choice(CATEGORIES)
        key = uuid.uuid4().hex
        form = {
            "category": category,
            "title": f"Flood bench report {number}",
            "description": "Water across the road after the storm.",
            "lon": f"{rng.uniform(AREA[0], AREA[2]):.6f}",
            "lat": f"{rng.uniform(AREA[1], AREA[3]):.6f}",
            "device_id": device,
            **answers,
        }
        body = multipart(form, image if rng.random() < args.photo_share else None)
        headers = {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Idempotency-Key": key,
        }
        tally.offered += 1
        first = time.monotonic()
        url = urls[(number + tally.offered) % len(urls)]
        while True:
            started = time.monotonic()
            connection = connections[url]
            try:
                async with asyncio.timeout(30):
                    status, answer = await connection.post("/api/reports", headers, body)
                failure = str(status)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, Refused) as exc:
                connection.close()
                status, failure = 0, type(exc).__name__
            if status in (200, 201):
                now = time.monotonic()
                tally.accepted[key] = json.loads(answer)["reference"]
                tally.latencies.append(now - started)
                tally.end_to_end.append(now - first)
                break
            tally.failures[failure] = tally.failures.get(failure, 0) + 1
            if 0 < status < 500 and status != 429:
                tally.given_up += 1  # refused for good (a bug in this bench or the service)
                break
            if time.monotonic() > end + 60:
                tally.given_up += 1
                break
            tally.retries += 1
            url = urls[(urls.index(url) + 1) % len(urls)]  # as nginx would, try another
            await asyncio.sleep(0.2)
    for connection in connections.values():
        connection.close()


async def flood(
    urls: list[str], args: argparse.Namespace, restart: Callable[[], float] | None, meter: CpuMeter
) -> tuple[Tally, float, dict[str, float]]:
    tally = Tally()
    image = photo()
    meter.begin()
    started = time.monotonic()
    end = started + args.seconds
    tasks = [
        asyncio.create_task(resident(n, urls, tally, args, end, image))
        for n in range(args.residents)
    ]
    if restart:
        await asyncio.sleep(args.seconds / 2)
        print("restarting PostgreSQL…", flush=True)
        took = await asyncio.to_thread(restart)
        print(f"PostgreSQL back after {took:.1f} s", flush=True)
    await asyncio.gather(*tasks)
    return tally, time.monotonic() - started, meter.end()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def spread(values: list[float]) -> str:
    return "  ".join(f"p{int(q * 100)} {percentile(values, q):.0f}" for q in (0.5, 0.95, 0.99))


def count_check(engine, tally: Tally) -> tuple[int, int, int, int]:  # noqa: ANN001
    """(lost, duplicated, wrong reference, unannounced) against the database."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT idempotency_key, min(reference) AS reference, count(*) AS n"
                " FROM app.reports WHERE device_id LIKE 'flood%' GROUP BY idempotency_key"
            )
        ).all()
    stored = {row.idempotency_key: row for row in rows}
    lost = sum(1 for key in tally.accepted if key not in stored)
    duplicated = sum(1 for row in rows if row.n > 1)
    wrong = sum(
        1 for key, ref in tally.accepted.items() if key in stored and stored[key].reference != ref
    )
    unannounced = sum(1 for key in stored if key not in tally.accepted)
    return lost, duplicated, wrong, unannounced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="offered reports/s")
    parser.add_argument("--workers", type=int, default=2, help="app processes")
    parser.add_argument("--photo-share", type=float, default=0.5)
    parser.add_argument("--restart", action="store_true", help="restart PostgreSQL halfway")
    parser.add_argument("--pg-port", type=int, default=PG_PORT, help="the private cluster's port")
    args = parser.parse_args()

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    base = Settings(state_dir=WORK_DIR / "state", pg_port=args.pg_port, pg_database=DATABASE)
    cluster = private_cluster(base)
    started_cluster = cluster.start()
    try:
        cluster.drop_database(DATABASE)
        shutil.rmtree(base.photos_path, ignore_errors=True)
        runtime = runtime_.start(base)
        load_missing_samples(runtime.engine, runtime.catalogue, base.state_dir / "loads")
        settings = runtime.settings

        def restart() -> float:
            began = time.monotonic()
            meter.before_restart()
            cluster.stop()
            cluster.start()
            meter.after_restart()
            return time.monotonic() - began

        with servers(settings, args.workers) as (urls, pids):
            meter = CpuMeter(pids, cluster.data_dir)
            flooded = flood(urls, args, restart if args.restart else None, meter)
            tally, took, cpu = asyncio.run(flooded)
        lost, duplicated, wrong, unannounced = count_check(runtime.engine, tally)
        runtime.close()
    finally:
        if started_cluster:
            cluster.stop()

    accepted = len(tally.accepted)
    throughput = accepted / args.seconds
    p95 = percentile(tally.latencies, 0.95)
    print(f"\nflood: {args.residents} residents, {args.seconds:.0f} s, offered "
          f"{args.rate:.0f}/s, {args.workers} app processes, {args.photo_share:.0%} with a photo"
          f"{', PostgreSQL restarted halfway' if args.restart else ''}")  # fmt: skip
    print(f"  offered {tally.offered}, accepted {accepted}, given up {tally.given_up}, "
          f"retries {tally.retries}, failed attempts {tally.failures or 'none'}")  # fmt: skip
    print(f"  throughput {throughput:.1f} reports/s (run took {took:.1f} s)")
    per_report = {name: used * 1000 / max(1, accepted) for name, used in cpu.items()}
    print(f"  CPU ms per accepted report: {sum(per_report.values()):.1f} "
          f"(app {per_report['app']:.1f}, PostgreSQL {per_report['postgres']:.1f}, "
          f"load generator {per_report['load']:.1f}); machine load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    print(f"  latency ms (accepted attempt): {spread(tally.latencies)}")
    print(f"  latency ms (end to end, retries included): {spread(tally.end_to_end)}")
    print(f"  count check: lost {lost}, duplicated {duplicated}, wrong reference {wrong}, "
          f"in the database but never confirmed {unannounced}")  # fmt: skip
    checks = {
        f"throughput >= {TARGET_RATE:.0f}/s": throughput >= TARGET_RATE,
        f"p95 < {TARGET_P95_MS:.0f} ms": p95 < TARGET_P95_MS,
        "zero lost, zero duplicated": lost == duplicated == wrong == unannounced == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
