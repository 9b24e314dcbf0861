"""An in-process cache of rendered vector tiles, bounded in bytes (least recently used out).

A tile is cached under what decides its bytes: the layer, its live version, the fields
the caller may see (so a staff tile never answers an anonymous request), the tile matrix
set and ``z/y/x``. A new live version of a layer (a load or a rollback) drops all of that
layer's tiles: ``observe`` is told every layer's version whenever they are re-read, and a
tile rendered under a version not seen before announces it too. Concurrent misses of the
same tile wait for one rendering instead of each running the query.

Counters (``stats()``) are per process, for a metrics endpoint to read.
"""

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

ENTRY_OVERHEAD = 200  # bytes counted per entry besides the tile: key, node, bookkeeping


@dataclass(frozen=True)
class TileKey:
    layer: str
    version: int | None
    fields: tuple[str, ...]
    tms: str
    z: int
    y: int
    x: int
    filter: str | None = None  # the CQL2 JSON of a filtered tile (the planning filter)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0  # misses answered by another request's rendering of the same tile
    stores: int = 0
    evictions: int = 0
    invalidations: int = 0  # tiles dropped because their layer has a new live version
    entries: int = 0
    bytes: int = 0
    max_bytes: int = 0


Rendered = tuple[int | None, bytes]  # (live version the tile was read at, MVT bytes)


class TileCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[TileKey, bytes] = OrderedDict()
        self._versions: dict[str, int | None] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: dict[TileKey, asyncio.Future[Rendered]] = {}
        self.counters = CacheStats()

    def get(self, key: TileKey) -> bytes | None:
        with self._lock:
            body = self._tiles.get(key)
            if body is None:
                self.counters.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.counters.hits += 1
            return body

    def put(self, key: TileKey, body: bytes) -> None:
        size = len(body) + ENTRY_OVERHEAD
        with self._lock:
            self._observe(key.layer, key.version)
            if size > self.max_bytes or key in self._tiles:
                return
            self._tiles[key] = body
            self._bytes += size
            self.counters.stores += 1
            while self._bytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= len(dropped) + ENTRY_OVERHEAD
                self.counters.evictions += 1

    def observe(self, versions: dict[str, int]) -> None:
        """Every layer's live version as just read: tiles of changed layers are dropped."""
        with self._lock:
            for layer in self._versions.keys() | versions.keys():
                self._observe(layer, versions.get(layer))

    def _observe(self, layer: str, version: int | None) -> None:
        if layer in self._versions and self._versions[layer] == version:
            return
        self._versions[layer] = version
        stale = [key for key in self._tiles if key.layer == layer and key.version != version]
        for key in stale:
            self._bytes -= len(self._tiles.pop(key)) + ENTRY_OVERHEAD
        self.counters.invalidations += len(stale)

    async def render_once(
        self, key: TileKey, render: Callable[[], Awaitable[Rendered]]
    ) -> Rendered:
        """``render()`` for a missed tile, shared by the requests that miss it meanwhile;
        the result is stored under the version it was actually read at."""
        flight = self._flights.get(key)
        if flight is not None:
            self.counters.coalesced += 1
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            version, body = await render()
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # marked retrieved: the waiters, if any, get it raised
            raise
        finally:
            del self._flights[key]
        flight.set_result((version, body))
        self.put(replace(key, version=version), body)
        return version, body

    def stats(self) -> CacheStats:
        with self._lock:
            counters = CacheStats(**vars(self.counters))
            counters.entries, counters.bytes = len(self._tiles), self._bytes
        counters.max_bytes = self.max_bytes
        return counters
