"""The tile cache on its own: bounded in bytes, keyed by what decides a tile's bytes,
emptied of a layer's tiles when its live version changes, one rendering per missed tile."""

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mapserver.tile_cache import ENTRY_OVERHEAD, TileCache, TileKey


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:  # noqa: ANN401
    """asyncio.run in a thread of its own: the browser tests leave a loop in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def key(layer: str = "lights", version: int | None = 1, x: int = 0, fields=("a",)) -> TileKey:
    return TileKey(layer, version, tuple(fields), "WebMercatorQuad", 14, 0, x)


def test_hits_misses_and_the_byte_bound():
    cache = TileCache(max_bytes=3 * (100 + ENTRY_OVERHEAD))
    assert cache.get(key(x=0)) is None
    for x in range(3):
        cache.put(key(x=x), bytes(100))
    assert cache.get(key(x=0)) == bytes(100)  # now the most recently used
    cache.put(key(x=3), bytes(100))  # evicts x=1, the least recently used
    assert cache.get(key(x=1)) is None and cache.get(key(x=0)) is not None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.stores, stats.evictions) == (2, 2, 4, 1)
    assert stats.entries == 3 and stats.bytes == 3 * (100 + ENTRY_OVERHEAD) <= stats.max_bytes
    cache.put(key(x=9), bytes(10_000))  # larger than the whole cache: not kept
    assert cache.get(key(x=9)) is None and cache.stats().entries == 3


def test_what_the_caller_may_see_is_part_of_the_key():
    cache = TileCache(max_bytes=1 << 20)
    cache.put(key(fields=("a",)), b"public")
    assert cache.get(key(fields=("a", "secret"))) is None
    assert cache.get(key(fields=("a",))) == b"public"


def test_a_new_live_version_drops_that_layers_tiles():
    cache = TileCache(max_bytes=1 << 20)
    cache.observe({"lights": 1, "parcels": 4})
    cache.put(key(version=1), b"v1")
    cache.put(key("parcels", 4), b"p4")
    cache.observe({"lights": 2, "parcels": 4})  # a load of lights
    assert cache.get(key(version=1)) is None
    assert cache.get(key("parcels", 4)) == b"p4"
    cache.put(key(version=2), b"v2")
    cache.observe({"lights": 1, "parcels": 4})  # a rollback: version 1 live again
    assert cache.get(key(version=2)) is None
    stats = cache.stats()
    assert stats.invalidations == 2 and stats.entries == 1
    assert stats.bytes == 2 + ENTRY_OVERHEAD


def test_concurrent_misses_render_once_and_store_the_version_read():
    cache = TileCache(max_bytes=1 << 20)
    renders = 0

    async def render() -> tuple[int, bytes]:
        nonlocal renders
        renders += 1
        await asyncio.sleep(0.01)
        return 2, b"tile"  # read at version 2, though version 1 was asked for

    async def main() -> list[tuple[int | None, bytes]]:
        return await asyncio.gather(*(cache.render_once(key(version=1), render) for _ in range(5)))

    assert run(main()) == [(2, b"tile")] * 5
    assert renders == 1 and cache.stats().coalesced == 4
    assert cache.get(key(version=2)) == b"tile" and cache.get(key(version=1)) is None


def test_a_failed_rendering_is_not_cached():
    cache = TileCache(max_bytes=1 << 20)

    async def broken() -> tuple[int, bytes]:
        raise RuntimeError("database gone")

    async def main() -> None:
        await cache.render_once(key(), broken)

    with pytest.raises(RuntimeError, match="database gone"):
        run(main())
    assert cache.stats().entries == 0
