"""Vector tile timings of a running server, on tiles where a layer's features are.

    .venv/bin/python bench/tiles_bench.py [--url http://127.0.0.1:8000] [--tiles 50]
                                          [--zooms 14 16] [--layers streetlights land_ownership]

For each layer and zoom it picks up to ``--tiles`` distinct WebMercatorQuad tiles under
features drawn at random (seeded, so dense areas weigh more, as on a real map), warms the
server's connection pool on other tiles, then fetches each tile twice: cold (the first
request of the tile: the server renders it) and warm (from its tile cache). It prints, for
each, the median and 90th percentile of the wall time and of the server's own
``Server-Timing``, with the median tile size and feature count. The server's cache says
whether it answered from it; first fetches it already had (a second run against the same
server) are counted and shown: restart the server, or run it with
``MAPSERVER_TILE_CACHE_MB=0``, for cold figures. Target: p50 under 20 ms. The database is
the server's (``DATABASE_URL`` or the private cluster): the bench only reads feature
positions from it.
"""

import argparse
import statistics
import time

import httpx
import mapbox_vector_tile
import morecantile
from sqlalchemy import create_engine, text

from layers.catalogue import load_catalogue
from mapserver.database import private_cluster
from mapserver.settings import get_settings

SEED = 0.27700
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
SAMPLE = """
SELECT ST_X(p), ST_Y(p) FROM (
    SELECT ST_Transform(ST_PointOnSurface(geom), 4326) AS p FROM layers."{table}"
    ORDER BY md5(fid::text || :seed) LIMIT :n
) s
"""


def pick_tiles(engine, table: str, zoom: int, count: int) -> list[morecantile.Tile]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(text(SAMPLE.format(table=table)), {"seed": str(SEED), "n": 20 * count})
        tiles = list(dict.fromkeys(WEB_MERCATOR.tile(x, y, zoom) for x, y in rows))
    return tiles[:count]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def fetch(client: httpx.Client, path: str, tile: morecantile.Tile) -> dict[str, float | str]:
    started = time.perf_counter()
    response = client.get(path.format(z=tile.z, y=tile.y, x=tile.x))
    wall = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    timing = response.headers.get("server-timing", 'tile;desc="miss";dur=0')
    decoded = mapbox_vector_tile.decode(response.content) if response.content else {}
    return {
        "wall": wall,
        "server": float(timing.split("dur=")[1]),
        "cache": "hit" if 'desc="hit"' in timing else "miss",
        "size": len(response.content),
        "features": sum(len(v["features"]) for v in decoded.values()),
    }


def run(url: str, layer: str, table: str, zoom: int, count: int, engine) -> None:  # noqa: ANN001
    tiles = pick_tiles(engine, table, zoom, count + 5)
    warmup, tiles = tiles[:5], tiles[5:]
    with httpx.Client(base_url=url, timeout=60) as client:
        path = f"/ogc/collections/{layer}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
        for tile in warmup:  # warm the pool's connections (PROJ set-up per connection)
            client.get(path.format(z=tile.z, y=tile.y, x=tile.x))
        cold = [fetch(client, path, tile) for tile in tiles]
        warm = [fetch(client, path, tile) for tile in tiles]
    for name, answers in (("cold", cold), ("warm", warm)):
        walls = [float(a["wall"]) for a in answers]
        servers = [float(a["server"]) for a in answers]
        hits = sum(a["cache"] == "hit" for a in answers)
        print(
            f"{layer:16} z{zoom:<3} {name} {len(tiles):3} tiles  wall p50 "
            f"{statistics.median(walls):6.1f} ms  p90 {percentile(walls, 90):6.1f}  server p50 "
            f"{statistics.median(servers):6.1f}  p90 {percentile(servers, 90):6.1f}  size p50 "
            f"{statistics.median(float(a['size']) for a in answers) / 1024:6.1f} KiB  features "
            f"p50 {statistics.median(float(a['features']) for a in answers):6.0f} max "
            f"{max(float(a['features']) for a in answers):.0f}  cache hits {hits}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tiles", type=int, default=50)
    parser.add_argument("--zooms", type=int, nargs="+", default=[14, 16])
    parser.add_argument("--layers", nargs="+", default=["streetlights", "land_ownership"])
    args = parser.parse_args()
    settings = get_settings()
    database_url = settings.database_url
    if not database_url:
        database_url = private_cluster(settings).url(settings.pg_database)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    catalogue = load_catalogue(settings.catalogue_path)
    for layer in args.layers:
        for zoom in args.zooms:
            run(args.url, layer, catalogue.layer(layer).table_name, zoom, args.tiles, engine)
    engine.dispose()


if __name__ == "__main__":
    main()
