"""The map in a real browser: how fast the first view is ready, and how smooth panning is
over the big layers drawn from vector tiles.

    .venv/bin/python bench/map_bench.py [--runs N] [--screens S] [--keep-db]

One database (`mapserver_bench_map`) gets the catalogue's sample layers, the synthetic ones
included (130,000 land parcels, 40,000 gullies, 20,000 street lights…), loaded by our loader
as at a first start. Our server (`mapserver run`, one worker) serves it on a free localhost
port; Debian's chromium (Playwright, 1280×800, no GPU) opens the map.

- First view: N fresh browser contexts (empty caches) open `/`; the time from navigation
  start to the map's `data-ready` (the boundary drawn, the view final, the first layers
  asked for: what the browser tests wait for), and to the visible layers' features drawn.
  Target: data-ready under 2 s in every run.
- Panning: over land ownership and over gullies (each alone, zoom 16, central Stockport), a
  mouse drag of S screens (each 80 % of the map's width or height, 40 moves 16 ms apart,
  zig-zagging east, south and west) while a requestAnimationFrame loop records frame times.
  Printed: frames, p50 and p95 frame time, the share of frames over 50 ms and the tiles
  fetched. Target: p95 at most 50 ms (3 frames at 60 Hz: 20 frames a second) and under 5 %
  of frames over 50 ms.

Exits 1 when a target is missed. Results are also written to var/bench/map-run/results.json.
"""

import argparse
import json
import statistics
import sys
import time
from typing import Any

import ogc_bench
from playwright.sync_api import Page, sync_playwright

from loaders.samples import load_missing_samples
from mapserver import runtime as runtime_
from mapserver.settings import Settings
from tests.browser import CHROMIUM, CHROMIUM_ARGS

ogc_bench.DATABASE = "mapserver_bench_map"  # its own database, made and dropped as ogc_bench's
ogc_bench.RUN_DIR = RUN_DIR = ogc_bench.WORK_DIR / "map-run"

MAX_READY_MS = 2000.0
MAX_P95_FRAME_MS = 50.0
MAX_SLOW_SHARE = 0.05
SLOW_FRAME_MS = 50.0
VIEWPORT = {"width": 1280, "height": 800}
PAN_VIEW = "?lat=53.40850&lng=-2.15750&zoom=16&layers={layer}"  # central Stockport
PAN_LAYERS = ("land_ownership", "gullies")
MOVES_PER_SCREEN = 40
MOVE_INTERVAL_MS = 16

# Before any page script: note when the map says it is ready (ms since navigation start).
READY_PROBE = """
new MutationObserver((_changes, observer) => {
  const map = document.getElementById('map');
  if (map && map.dataset.ready === 'true') {
    window.__readyAt = performance.now();
    observer.disconnect();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-ready'] });
"""
FRAMES_START = """() => {
  window.__frames = [];
  window.__recording = true;
  const tick = (t) => {
    window.__frames.push(t);
    if (window.__recording) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
FRAMES_STOP = """() => {
  window.__recording = false;
  const f = window.__frames;
  return f.slice(1).map((t, i) => t - f[i]);
}"""
DEFAULT_LAYERS_DRAWN = """ids => ids.every((id) => document.querySelector(`.layer-${id}`))
  ? performance.now() : false"""


def prepare(url: str) -> list[str]:
    """Migrations, tables and every sample layer (skipped when a kept database has them);
    returns the layers switched on when the map opens."""
    state = RUN_DIR / "state"
    settings = Settings(database_url=url, catalogue_dir=ogc_bench.CATALOGUE, state_dir=state)
    runtime = runtime_.start(settings)
    try:
        started = time.perf_counter()
        loaded = load_missing_samples(runtime.engine, runtime.catalogue, state / "loads")
        if loaded:
            rows = sum(r.rows_loaded for r in loaded)
            print(f"  {len(loaded)} sample layers, {rows:,} rows, loaded in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        ogc_bench.vacuum(url, [runtime.catalogue.layer(i).table_name for i in PAN_LAYERS])
        council = runtime.catalogue.council.boundary_layer
        return [
            layer.id
            for layer in runtime.catalogue.public_layers
            if layer.visible and layer.id != council
        ]
    finally:
        runtime.close()


def first_view(browser, base: str, runs: int, default_layers: list[str]) -> list[dict]:  # noqa: ANN001
    results = []
    for run in range(runs):
        context = browser.new_context(viewport=VIEWPORT, base_url=base)
        context.add_init_script(READY_PROBE)
        page = context.new_page()
        page.goto("/")
        page.wait_for_selector("#map[data-ready=true]", timeout=30_000)
        drawn = page.wait_for_function(DEFAULT_LAYERS_DRAWN, arg=default_layers, timeout=30_000)
        timing = page.evaluate(
            "() => ({ ready: window.__readyAt,"
            " dom: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,"
            " requests: performance.getEntriesByType('resource').length })"
        )
        timing["drawn"] = drawn.json_value()
        results.append(timing)
        print(
            f"  run {run + 1}: DOM ready {timing['dom']:.0f} ms, data-ready {timing['ready']:.0f}"
            f" ms, layers drawn {timing['drawn']:.0f} ms ({timing['requests']} requests)",
            flush=True,
        )
        context.close()
    return results


def drag(page: Page, dx: float, dy: float) -> None:
    """One mouse drag by (dx, dy) pixels from the map's centre, paced like a hand."""
    box = page.locator("#map").bounding_box()
    assert box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, MOVES_PER_SCREEN + 1):
        page.mouse.move(x + dx * step / MOVES_PER_SCREEN, y + dy * step / MOVES_PER_SCREEN)
        page.wait_for_timeout(MOVE_INTERVAL_MS)
    page.mouse.up()


def pan(browser, base: str, layer: str, screens: int) -> dict[str, Any]:  # noqa: ANN001
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    page = context.new_page()
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if f"/{layer}/tiles/" in r.url else None)
    page.goto("/" + PAN_VIEW.format(layer=layer))
    page.wait_for_selector("#map[data-ready=true]", timeout=30_000)
    page.wait_for_selector(f".layer-{layer}", state="attached", timeout=30_000)
    page.wait_for_load_state("networkidle")
    before = len(tiles)
    width, height = VIEWPORT["width"] * 0.8, (VIEWPORT["height"] - 200) * 0.8
    # East, east, south, west, west, south…: new ground on every screen.
    moves = [(-width, 0), (-width, 0), (0, -height), (width, 0), (width, 0), (0, -height)]
    page.evaluate(FRAMES_START)
    started = time.perf_counter()
    for i in range(screens):
        drag(page, *moves[i % len(moves)])
    page.wait_for_timeout(500)  # the last tiles drawn
    frames = page.evaluate(FRAMES_STOP)
    seconds = time.perf_counter() - started
    drawn = page.locator(f".layer-{layer}").count()
    context.close()
    frames.sort()
    slow = sum(1 for f in frames if f > SLOW_FRAME_MS)
    return {
        "layer": layer,
        "frames": len(frames),
        "seconds": seconds,
        "p50_ms": statistics.median(frames),
        "p95_ms": frames[int(0.95 * (len(frames) - 1))],
        "max_ms": frames[-1],
        "slow_share": slow / len(frames),
        "tiles": len(tiles) - before,
        "tile_errors": sum(1 for s in tiles if s not in (200, 204, 304)),
        "features_drawn_at_end": drawn,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="first-view loads (default 5)")
    parser.add_argument("--screens", type=int, default=6, help="screens panned (default 6)")
    parser.add_argument("--keep-db", action="store_true", help="keep the database for next time")
    options = parser.parse_args()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with ogc_bench.bench_database(options.keep_db) as (url, existed):
        print(f"Database {ogc_bench.DATABASE}{' (kept)' if existed else ''}: preparing", flush=True)
        default_layers = prepare(url)
        server, args, env, cwd = ogc_bench.ours(url)
        ogc_bench.start(server, args, env, cwd)
        base = server.root.removesuffix("/ogc")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                print(f"First view ({', '.join(default_layers)} switched on):", flush=True)
                loads = first_view(browser, base, options.runs, default_layers)
                print("Panning:", flush=True)
                pans = [pan(browser, base, layer, options.screens) for layer in PAN_LAYERS]
                browser.close()
        finally:
            ogc_bench.stop(server)
    return report(loads, pans)


def report(loads: list[dict], pans: list[dict]) -> int:
    ready = [r["ready"] for r in loads]
    drawn = [r["drawn"] for r in loads]
    print(f"\nFirst view, {len(loads)} runs: data-ready median {statistics.median(ready):.0f} ms,"
          f" worst {max(ready):.0f} ms; layers drawn median {statistics.median(drawn):.0f} ms,"
          f" worst {max(drawn):.0f} ms")  # fmt: skip
    print(f"\n{'layer':16} {'frames':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}"
          f" {'>50 ms':>7} {'tiles':>6}")  # fmt: skip
    for p in pans:
        print(f"{p['layer']:16} {p['frames']:7} {p['p50_ms']:7.1f} {p['p95_ms']:7.1f}"
              f" {p['max_ms']:7.0f} {p['slow_share']:7.1%} {p['tiles']:6}")  # fmt: skip
    checks = [
        (f"first view data-ready < {MAX_READY_MS:.0f} ms in every run", max(ready) < MAX_READY_MS),
        *(
            (
                f"{p['layer']}: p95 frame <= {MAX_P95_FRAME_MS:.0f} ms and < "
                f"{MAX_SLOW_SHARE:.0%} of frames over {SLOW_FRAME_MS:.0f} ms",
                # + 0.5: frame times jitter by a fraction of a millisecond around 3 frames
                p["p95_ms"] <= MAX_P95_FRAME_MS + 0.5 and p["slow_share"] < MAX_SLOW_SHARE,
            )
            for p in pans
        ),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    out = RUN_DIR / "results.json"
    out.write_text(json.dumps({"first_view": loads, "pans": pans}, indent=2))
    print(f"\nResults: {out}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
