"""Loading one layer: read a source in batches, prepare and encode each, sort the rows in
spatial order, stream them into a staging table with binary COPY, index it, swap it in.

The staging table is filled and indexed in transactions of its own (its indexes from two
connections at once), invisible to readers; one short transaction then swaps it in, so
readers see the old version or the new one, never half of one, and a refused, failed or
killed load leaves the previous version serving (its staging table is dropped then, or
by the next load). ``ANALYZE`` follows the swap. The load's connection holds the layer's
lock throughout.

The source is read in a thread of its own, each batch prepared and encoded by a thread
per core as soon as it is read (numpy, shapely, Arrow and psycopg2 release the GIL while
they work); the encoded rows are then sorted in spatial order and streamed to COPY. The
database is reached through psycopg2 alone (an SQLAlchemy engine's pooled connections,
or new ones), so `mapserver load` never imports SQLAlchemy.
"""

import csv
import getpass
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING

import psycopg2
import shapely
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from layers.catalogue import Catalogue
from layers.model import Layer, Source
from loaders import pgbinary, sql
from loaders.order import Declared, Encoded, spatially_ordered
from loaders.prepare import (
    Context,
    PreparedBatch,
    Reject,
    check_columns,
    check_coordinates,
    prepare_batch,
)
from loaders.read import Batch, Reader, open_reader
from loaders.sources import (
    DOWNLOAD_TIMEOUT_S,
    MAX_DOWNLOAD_BYTES,
    LocalSource,
    open_source,
)
from mapserver.database import connected
from mapserver.errors import ServiceError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as SAConnection
    from sqlalchemy.engine import Row

    from mapserver.database import Connects

log = logging.getLogger("loaders.pipeline")
Progress = Callable[[int, int | None], None]  # rows read so far, total rows when known
MAX_REJECTS_KEPT = 100_000  # listed in the report; beyond this they are only counted
AHEAD = 3  # prepared batches waiting for the COPY
WORKERS = min(os.cpu_count() or 1, 4)  # threads preparing batches (GEOS releases the GIL)
# Batches handed to those threads at once: twice as many, so that they go on preparing
# while a sorted window is sent (they idled 0.04 s a window with one each).
IN_FLIGHT = 2 * WORKERS


@dataclass(frozen=True)
class LoadResult:
    layer: str
    version: int
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_repaired: int
    rows_outside: int
    rejects_file: Path | None
    seconds: float


@dataclass
class _Tally:
    read: int = 0
    written: int = 0
    repaired: int = 0
    outside: int = 0
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)  # rows in each sorted window

    def add_rejects(self, rejects: list[Reject]) -> None:
        room = MAX_REJECTS_KEPT - len(self.rejects)
        self.rejects += rejects[: max(room, 0)]


class _CopyStream:
    """Chunks of COPY data as the file psycopg2's ``copy_expert`` reads: each read copies
    (part of) one chunk once (``io.RawIOBase.read`` copies twice)."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._at = 0
        self.error: BaseException | None = None  # psycopg2 hides it behind QueryCanceled

    def read(self, size: int = -1) -> bytes:
        while self._at >= len(self._chunk):
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.error = exc
                raise
            if chunk is None:
                return b""
            self._chunk, self._at = memoryview(chunk), 0
        end = len(self._chunk) if size < 0 else self._at + size
        data = self._chunk[self._at : end].tobytes()
        self._at += len(data)
        return data


@contextmanager
def _opened(
    location: str | Path | LocalSource, max_bytes: int, timeout: float
) -> Iterator[LocalSource]:
    if isinstance(location, LocalSource):
        yield location
    else:
        with open_source(location, max_bytes=max_bytes, timeout=timeout) as local:
            yield local


def live_versions(conn: "SAConnection") -> "dict[str, Row]":
    """Each loaded layer's live version: version, rows_loaded, finished_at."""
    return {row.layer: row for row in conn.exec_driver_sql(sql.LIVE_VERSIONS)}


def default_run_by(how: str) -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} ({how})"


def _prepare(batch: Batch, contexts: "Queue[Context]") -> tuple[int, PreparedBatch, Encoded]:
    ctx = contexts.get()  # one per thread: a prepared GEOS geometry is not thread-safe
    try:
        prepared = prepare_batch(batch, ctx)
    finally:
        contexts.put(ctx)
    return (
        len(batch.rows),
        prepared,
        Encoded(pgbinary.encode_rows(prepared.table), prepared.centres),
    )


def _in_order(pool: ThreadPoolExecutor, work: Callable, items: Iterator, ahead: int) -> Iterator:
    """``work(item)`` for each item on the ``pool``, up to ``ahead`` at once, in order."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        while pending and (len(pending) >= ahead or pending[0].done()):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _copy_chunks(
    reader: Reader, layer: Layer, context: "Future[Context]", tally: _Tally, progress: Progress
) -> Iterator[memoryview]:
    """The COPY data: source batches prepared and encoded by ``WORKERS`` threads as they
    are read (once the database settled the ``context``: the boundary), then sorted in
    spatial order (whole, or in windows when the source is in spatial order already)."""
    batches = reader.batches
    first = next(batches, None)  # read while the database settles the context
    if first is not None:
        batches = itertools.chain([first], batches)
    contexts: Queue[Context] = Queue()
    ctx = context.result()
    for number in range(WORKERS):
        contexts.put(ctx if number == 0 else ctx.for_another_thread())

    def declared() -> Declared | None:
        extent = ctx.extent_of(reader.extent) if reader.extent else None
        return Declared(extent, reader.total) if extent and reader.total else None

    def prepare(item: tuple[int, Batch]) -> tuple[int, PreparedBatch, Encoded]:
        number, batch = item
        if number == 0:  # by a preparing thread: the next batch is read meanwhile
            check_coordinates(batch.geometry, reader.crs, layer.id)
        return _prepare(batch, contexts)

    def counted(results: Iterator[tuple[int, PreparedBatch, Encoded]]) -> Iterator[Encoded]:
        for rows, prepared, encoded in results:
            tally.read += rows
            tally.written += prepared.table.num_rows
            tally.repaired += prepared.repaired
            tally.outside += prepared.outside
            tally.add_rejects(prepared.rejects)
            progress(tally.read, reader.total)
            yield encoded

    yield memoryview(pgbinary.HEADER)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="load-prepare") as pool:
        encoded = counted(_in_order(pool, prepare, enumerate(batches), IN_FLIGHT))
        for rows in spatially_ordered(encoded, declared, tally.windows):
            yield memoryview(pgbinary.joined(rows))
    yield memoryview(pgbinary.TRAILER)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Ahead:
    """The items of ``items``, produced from now on by a thread of its own, up to
    ``depth`` ahead of the consumer. ``close()`` stops it (after the item in hand)."""

    def __init__(self, items: Iterator[memoryview], depth: int = AHEAD) -> None:
        self._queue: Queue[memoryview | _Failed | None] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, item: memoryview | _Failed | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except Full:
                pass

    def _produce(self, items: Iterator[memoryview]) -> None:
        try:
            for item in items:
                self._put(item)
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        else:
            self._put(None)

    def __iter__(self) -> "_Ahead":
        return self

    def __next__(self) -> memoryview:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is None or isinstance(item, _Failed):
            self._done = True
            if item is None:
                raise StopIteration
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a put waiting for room
            try:
                self._queue.get(timeout=0.1)
            except Empty:
                pass
        self._thread.join()


class _Rows:
    """A load's rows, read, prepared and encoded by threads of their own from creation:
    ``chunks`` (COPY data) once the database settled the ``context`` (the boundary)."""

    def __init__(self, reader: Reader, layer: Layer, progress: Progress) -> None:
        self.reader = reader
        self.tally = _Tally()
        self.context: Future[Context] = Future()
        self.chunks = _Ahead(_copy_chunks(reader, layer, self.context, self.tally, progress))

    def stop(self) -> None:
        self.context.cancel()  # the reading thread may wait for it
        self.chunks.close()


def _write_rejects(rejects: list[Reject], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "value", "reason"])
        writer.writerows((r.row, r.field, r.value, r.reason) for r in rejects)
    return path


def _boundary(conn: Connection, layer: Layer, catalogue: Catalogue | None) -> bytes | None:
    """The council boundary (plus the layer's tolerance) in the layer's CRS, when there is
    one to check: made by the first load that needs it from the boundary's live version."""
    if catalogue is None or layer.id == catalogue.council.boundary_layer:
        return None
    boundary = catalogue.layers[catalogue.council.boundary_layer]
    key = {"srid": layer.srid, "tolerance": layer.boundary_tolerance_m}
    with conn, conn.cursor() as cur:
        while True:
            cur.execute(sql.CACHED_BOUNDARY, {"layer": boundary.id, **key})
            live = cur.fetchone()
            if live is None:  # the boundary was never loaded: nothing to check against
                return None
            version_id, stored, wkb = live
            if not stored:
                # Stored only while that version is still live (in one snapshot with its
                # rows); a boundary swapped in meanwhile: look again.
                cur.execute(
                    sql.store_boundary(boundary.table_name), {"version_id": version_id, **key}
                )
                made = cur.fetchone()
                if made is None:
                    continue
                (wkb,) = made
            return bytes(wkb) if wkb is not None else None


def _start_version(
    conn: Connection, layer: Layer, local: LocalSource, crs_in: str, run_by: str
) -> tuple[int, int]:
    """The load's provenance record, once ``conn`` holds the layer's lock (until
    :func:`_unlock`). A killed load's record is marked, and its staging table dropped."""
    with conn, conn.cursor() as cur:
        cur.execute(sql.TRY_LOCK_LOAD, {"layer": layer.id})
        if not cur.fetchone()[0]:
            raise ServiceError(f"Another load of layer {layer.id} is in progress; try later.")
    with conn, conn.cursor() as cur:
        cur.execute(sql.MARK_INTERRUPTED, {"layer": layer.id})
        for (number,) in cur.fetchall():
            cur.execute(sql.drop_table(f"{layer.table_name}__v{number}"))
        cur.execute(
            sql.NEXT_VERSION,
            {
                "layer": layer.id, "source_uri": local.uri, "sha256": None,  # at the end
                "crs_in": crs_in, "crs_out": layer.crs, "run_by": run_by,
            },
        )  # fmt: skip
        version_id, version = cur.fetchone()
    return version_id, version


def _sha256(local: LocalSource) -> str | None:
    try:
        return local.sha256
    except OSError:  # the file went away: the failure says more than its digest would
        return None


def _unlock(conn: Connection, layer: Layer) -> None:
    with suppress(psycopg2.Error):  # a connection lost has lost its lock too
        conn.rollback()
        with conn, conn.cursor() as cur:
            cur.execute(sql.UNLOCK_LOAD, {"layer": layer.id})


def _unique_key(cur: Cursor, layer: Layer, staging: str, tally: _Tally) -> None:
    """A unique index on the key; only when that fails, find and reject the duplicates
    (rare, and a window query over every row costs more than the index)."""
    if not layer.key:
        return
    cur.execute("SAVEPOINT unique_key")
    try:
        cur.execute(sql.unique_index(staging, layer.key))
        return
    except psycopg2.IntegrityError:
        cur.execute("ROLLBACK TO SAVEPOINT unique_key")
    cur.execute(sql.remove_duplicates(staging, layer.id_field, layer.key))
    rejects = [
        Reject(fid, layer.key, key, f"duplicate {layer.key} (first at row {first})")
        for fid, key, first in cur.fetchall()
    ]
    tally.written -= len(rejects)
    tally.add_rejects(rejects)
    cur.execute(sql.unique_index(staging, layer.key))


def _index_fields(layer: Layer, catalogue: Catalogue | None) -> list[str]:
    """Fields queries filter on (the key has its unique index already)."""
    fields = [layer.time_field] if layer.time_field and layer.time_field != layer.key else []
    if catalogue:
        fields += [d.derived_from.field for d in _derived(layer, catalogue)]  # type: ignore[union-attr]
    return list(dict.fromkeys(fields))


def _derived(layer: Layer, catalogue: Catalogue) -> list[Layer]:
    return [
        d for d in catalogue.layers.values() if d.derived_from and d.derived_from.layer == layer.id
    ]


def _retired(layer: Layer) -> str:
    return f"{layer.table_name}__retired"


def _swap_in(cur: Cursor, layer: Layer, staging: str) -> None:
    previous = f"{layer.table_name}__previous"
    for statement in sql.swap(layer.table_name, staging, previous, _retired(layer)):
        cur.execute(statement)
    cur.execute(sql.RETIRE_PREVIOUS, {"layer": layer.id})
    cur.execute(sql.DEMOTE_LIVE, {"layer": layer.id})
    _rebuild_gazetteer(cur, layer)


def backfill_gazetteer(db: "Connects", catalogue: Catalogue) -> None:
    """Fill the search entries of layers loaded before they had any (an upgrade)."""
    with connected(db) as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT layer FROM app.gazetteer")
        present = {layer for (layer,) in cur.fetchall()}
        cur.execute(sql.LIVE_VERSIONS)  # an empty layer has no entries to add, at every start
        loaded = {layer for (layer, *_) in cur.fetchall()}
        for layer in catalogue.layers.values():
            if layer.gazetteer and layer.id not in present and layer.id in loaded:
                _rebuild_gazetteer(cur, layer)


def _rebuild_gazetteer(cur: Cursor, layer: Layer) -> None:
    """The search box follows the live version, in the same transaction."""
    if layer.gazetteer is None:
        return
    cur.execute(sql.CLEAR_GAZETTEER, {"layer": layer.id})
    entry = layer.gazetteer
    cur.execute(
        sql.fill_gazetteer(layer.table_name, entry.field, entry.group),
        {"layer": layer.id, "kind": entry.kind},
    )


def _drop_retired(conn: Connection, layer: Layer, catalogue: Catalogue | None) -> None:
    """Drop the tables a swap parked (outside the swap, which then stays short)."""
    layers = [layer, *(_derived(layer, catalogue) if catalogue else [])]
    with conn, conn.cursor() as cur:
        cur.execute(sql.NO_WAIT_COMMIT)  # a drop lost in a crash is done by the next load
        for each in layers:
            cur.execute(sql.drop_table(_retired(each)))


def _analyse(
    db: "Connects",
    conn: Connection,
    layer: Layer,
    catalogue: Catalogue | None,
    version_id: int,
    steps: dict[str, float],
    started: float,
) -> None:
    """Statistics for the version now live, while a second connection drops the tables
    the swap parked. ``ANALYZE`` runs after the swap as it cannot run beside an index
    build (their locks conflict) but can beside the drop; until it ends (0.06 s on
    150,000 polygons) queries plan from the row count the index builds recorded. The
    load is done by then: a failure here is logged, not raised (autovacuum analyses the
    table, and the next load drops what is left)."""
    with ThreadPoolExecutor(1, thread_name_prefix="load-drop") as pool:
        dropped = pool.submit(_drop_retired_on, db, layer, catalogue)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql.NO_WAIT_COMMIT)
                for statement in sql.analyze(layer.table_name):
                    cur.execute(statement)
                steps["analysed"] = round(time.monotonic() - started, 3)
                done = {"steps_s": steps, "seconds": round(time.monotonic() - started, 2)}
                cur.execute(sql.UPDATE_DETAILS, {"id": version_id, "details": json.dumps(done)})
        except psycopg2.Error as exc:
            log.warning("layer %s is live; its ANALYZE failed: %s", layer.id, exc)
        dropped.result()


def _drop_retired_on(db: "Connects", layer: Layer, catalogue: Catalogue | None) -> None:
    try:
        with connected(db) as conn:
            _drop_retired(conn, layer, catalogue)
    except psycopg2.Error as exc:
        log.warning("layer %s is live; dropping its retired tables failed: %s", layer.id, exc)


def _open_spare(db: "Connects") -> None:
    """Open the GiST's connection (and give it back to ``db``'s pool) while the rows are
    copied, not when the index is due; its server process loads PostGIS meanwhile too
    (7-10 ms a new connection pays on its first geometry)."""

    def run() -> None:
        with suppress(Exception):  # a failure shows when the GiST asks for its connection
            with connected(db) as conn, conn.cursor() as cur:
                cur.execute(sql.LOAD_POSTGIS)

    threading.Thread(target=run, name="load-connect", daemon=True).start()


def _load_settings(cur: Cursor) -> None:
    """The session settings of a load's transaction (index memory, no synchronous commit)."""
    for statement in sql.LOAD_SETTINGS:
        cur.execute(statement)


def _gist_index(db: "Connects", staging: str) -> None:
    with connected(db) as conn, conn, conn.cursor() as cur:
        _load_settings(cur)
        cur.execute(sql.gist_index(staging))


def _build_indexes(
    db: "Connects", conn: Connection, layer: Layer, staging: str, fields: list[str], tally: _Tally
) -> None:
    """Every index of the committed staging table (invisible to readers), from two
    connections at once: the GiST, the longest, on a second one; the id, the key (which
    finds duplicates) and the fields on ``conn``."""
    with ThreadPoolExecutor(1, thread_name_prefix="load-gist") as pool:
        gist = pool.submit(_gist_index, db, staging)
        with conn, conn.cursor() as cur:
            _load_settings(cur)
            cur.execute(sql.id_index(staging, layer.id_field))
            _unique_key(cur, layer, staging, tally)
            for statement in sql.field_indexes(staging, fields):
                cur.execute(statement)
        gist.result()


def _rebuild_derived(cur: Cursor, parent: Layer, catalogue: Catalogue, run_by: str) -> None:
    """Derived layers follow their parent in the same transaction."""
    for layer in _derived(parent, catalogue):
        rule = layer.derived_from
        assert rule is not None
        cur.execute(
            sql.NEXT_VERSION,
            {
                "layer": layer.id, "source_uri": f"derived from {parent.id}", "sha256": None,
                "crs_in": parent.crs, "crs_out": layer.crs, "run_by": run_by,
            },
        )  # fmt: skip
        version_id, version = cur.fetchone()
        staging = f"{layer.table_name}__v{version}"
        columns = [layer.id_field, *(f.name for f in layer.fields)]
        cur.execute(sql.drop_table(staging))
        for statement in sql.derive(staging, parent.table_name, columns, rule.field):
            cur.execute(statement, {"values": [str(v) for v in rule.values]})
        for statement in sql.build_indexes(staging, []):
            cur.execute(statement)
        cur.execute(f"SELECT count(*) FROM {sql.qualified(staging)}")
        (rows,) = cur.fetchone()
        _swap_in(cur, layer, staging)
        cur.execute(
            sql.PROMOTE,
            {
                "id": version_id, "rows_read": rows, "rows_loaded": rows, "rows_rejected": 0,
                "rows_repaired": 0, "details": json.dumps({"derived_from": parent.id}),
                "sha256": None,
            },
        )  # fmt: skip


def load_layer(
    db: "Connects",
    layer: Layer,
    location: str | Path | LocalSource,
    *,
    reports_dir: Path,
    run_by: str,
    catalogue: Catalogue | None = None,
    source: Source | None = None,
    source_crs: str | None = None,
    max_reject_ratio: float | None = None,
    progress: Progress = lambda done, total: None,
    max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    download_timeout: float = DOWNLOAD_TIMEOUT_S,
) -> LoadResult:
    """Load ``location`` (a path or URL) as the new live version of ``layer``, or change
    nothing and raise. With the ``catalogue``, features are checked against the council
    boundary and derived layers are rebuilt. ``db``: an SQLAlchemy engine, or a
    :class:`mapserver.database.Direct`."""
    if layer.derived_from:
        raise ServiceError(f"Layer {layer.id} is derived from {layer.derived_from.layer}.")
    if layer.managed:
        raise ServiceError(f"Layer {layer.id} is maintained by the service; it is not loaded.")
    started = time.monotonic()
    source = source or layer.source or Source(path=str(location))
    ratio = layer.max_reject_ratio if max_reject_ratio is None else max_reject_ratio
    with (
        _opened(location, max_download_bytes, download_timeout) as local,
        connected(db) as conn,
    ):
        reader = open_reader(local.path, source, source_crs)
        check_columns(reader.columns, layer)
        rows = _Rows(reader, layer, progress)  # read from now on, while the database is set
        try:
            version_id, version = _start_version(conn, layer, local, reader.crs.to_string(), run_by)
            try:
                return _load_version(
                    db, conn, layer, local, rows, catalogue, version_id, version,
                    started=started, reports_dir=reports_dir, run_by=run_by, ratio=ratio,
                )  # fmt: skip
            finally:
                _unlock(conn, layer)
        finally:
            rows.stop()


def _copy(cur: Cursor, staging: str, layer: Layer, chunks: "_Ahead") -> None:
    columns = [layer.id_field, *(f.name for f in layer.fields), "geom"]
    stream = _CopyStream(chunks)
    try:
        cur.copy_expert(sql.copy_into(staging, columns), stream, 1 << 20)
    except psycopg2.Error:
        if stream.error is not None:
            raise stream.error from None
        raise
    finally:
        chunks.close()


def _load_version(
    db: "Connects",
    conn: Connection,
    layer: Layer,
    local: LocalSource,
    rows: "_Rows",
    catalogue: Catalogue | None,
    version_id: int,
    version: int,
    *,
    started: float,
    reports_dir: Path,
    run_by: str,
    ratio: float,
) -> LoadResult:
    """Four steps, each a transaction on ``conn``: the rows copied into a staging table,
    its indexes built, then the swap that makes it live (one short transaction), then
    its statistics gathered (as the tables it parked are dropped). A failure or a kill
    before the swap changes nothing readers see; the staging table is dropped then, or
    by the next load."""
    tally = rows.tally
    details: dict[str, object] = {"etag": local.etag, "last_modified": local.last_modified}
    rejects_file = reports_dir / f"{layer.id}-v{version}-rejects.csv"
    staging = f"{layer.table_name}__v{version}"
    try:
        _drop_retired(conn, layer, catalogue)
        _open_spare(db)
        boundary = _boundary(conn, layer, catalogue)
        ctx = Context(layer, rows.reader.crs, shapely.from_wkb(boundary) if boundary else None)
        rows.context.set_result(ctx)
        with conn, conn.cursor() as cur:
            _load_settings(cur)
            cur.execute(sql.drop_table(staging))
            cur.execute(sql.create_staging(staging, layer))
            _copy(cur, staging, layer, rows.chunks)
        if not tally.read:
            raise ServiceError(f"{local.path.name} has no features; nothing was changed.")
        steps = {"copied": round(time.monotonic() - started, 3)}
        _build_indexes(db, conn, layer, staging, _index_fields(layer, catalogue), tally)
        steps["indexed"] = round(time.monotonic() - started, 3)
        tally.rejected = tally.read - tally.written
        if tally.rejected > ratio * tally.read or not tally.written:
            first = min(tally.rejects, key=lambda r: r.row)
            raise ServiceError(
                f"Layer {layer.id}: {tally.rejected} of {tally.read} rows rejected "
                f"(the limit is {ratio:.0%}); nothing was changed. First: row "
                f"{first.row}, {first.field}: {first.reason}.",
                hint=f"All rejects are listed in {rejects_file}.",
            )
        with conn, conn.cursor() as cur:
            cur.execute(sql.NO_WAIT_COMMIT)
            cur.execute(sql.primary_key(staging))
            _swap_in(cur, layer, staging)
            steps["live"] = round(time.monotonic() - started, 3)
            details |= {
                "transformation": ctx.transformation,
                "rejects_file": str(rejects_file) if tally.rejects else None,
                "rows_outside_boundary": tally.outside,
                "sorted_windows": len(tally.windows),  # 1: sorted whole (see loaders.order)
                "seconds": round(time.monotonic() - started, 2),
                # When each step ended, in seconds from the start: what a slow load spent.
                "steps_s": steps,
            }
            cur.execute(
                sql.PROMOTE,
                {
                    "id": version_id, "rows_read": tally.read, "rows_loaded": tally.written,
                    "rows_rejected": tally.rejected, "rows_repaired": tally.repaired,
                    "details": json.dumps(details), "sha256": local.sha256,
                },
            )  # fmt: skip
            if catalogue:
                _rebuild_derived(cur, layer, catalogue, run_by)
    except BaseException as exc:
        # On a connection of its own: ``conn`` may be the one that failed (the reading
        # threads are stopped by load_layer, on every way out).
        with connected(db) as other, other, other.cursor() as cur:
            cur.execute(sql.drop_table(staging))
            cur.execute(
                sql.FAIL_VERSION,
                {
                    "id": version_id, "message": str(exc)[:2000] or type(exc).__name__,
                    "rows_read": tally.read, "rows_rejected": tally.read - tally.written,
                    "details": json.dumps(details), "sha256": _sha256(local),
                },
            )  # fmt: skip
        raise
    finally:
        if tally.rejects:
            _write_rejects(tally.rejects, rejects_file)
    _analyse(db, conn, layer, catalogue, version_id, steps, started)
    return LoadResult(
        layer=layer.id, version=version, rows_read=tally.read, rows_loaded=tally.written,
        rows_rejected=tally.rejected, rows_repaired=tally.repaired, rows_outside=tally.outside,
        rejects_file=rejects_file if tally.rejects else None,
        seconds=round(time.monotonic() - started, 2),
    )  # fmt: skip


def rollback_layer(db: "Connects", layer: Layer, catalogue: Catalogue | None = None) -> int:
    """Make the previous version live again (and the live one previous): renames only.
    Derived layers are rebuilt from the version now live."""
    with connected(db) as conn, conn, conn.cursor() as cur:
        cur.execute(sql.LOCK_LAYER, {"layer": layer.id})
        cur.execute(sql.PREVIOUS_ID, {"layer": layer.id})
        previous = cur.fetchone()
        if previous is None:
            raise ServiceError(f"Layer {layer.id} has no previous version to roll back to.")
        for statement in sql.exchange(layer.table_name, f"{layer.table_name}__previous"):
            cur.execute(statement)
        cur.execute(sql.DEMOTE_LIVE, {"layer": layer.id})
        cur.execute(sql.MAKE_LIVE, {"id": previous[0]})
        (version,) = cur.fetchone()
        _rebuild_gazetteer(cur, layer)
        if catalogue:
            _rebuild_derived(cur, layer, catalogue, default_run_by("mapserver rollback"))
        return version
