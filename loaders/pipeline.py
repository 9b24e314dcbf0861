"""Loading one layer: read a source in batches, prepare each batch, stream the rows into a
staging table with COPY, index it, then swap it in.

Everything after the provenance record happens in one transaction, so readers see the
old version or the new one, never half of one, and a refused, failed or killed load
leaves the previous version serving. Reading and preparing (this process) overlap with
PostgreSQL parsing and writing the rows (the server process).
"""

import csv
import getpass
import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pyarrow.csv as pacsv
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from layers.catalogue import Catalogue
from layers.model import Layer, Source
from layers.tables import layer_table
from loaders import sql
from loaders.prepare import Context, Reject, check_columns, check_coordinates, prepare_batch
from loaders.read import Reader, open_reader
from loaders.sources import (
    DOWNLOAD_TIMEOUT_S,
    MAX_DOWNLOAD_BYTES,
    LocalSource,
    open_source,
)
from mapserver.errors import ServiceError

Progress = Callable[[int, int | None], None]  # rows read so far, total rows when known
MAX_REJECTS_KEPT = 100_000  # listed in the report; beyond this they are only counted
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


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

    def add_rejects(self, rejects: list[Reject]) -> None:
        room = MAX_REJECTS_KEPT - len(self.rejects)
        self.rejects += rejects[: max(room, 0)]


class _CopyStream(io.RawIOBase):
    """A file-like view of CSV chunks, for psycopg2's ``copy_expert``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._at = 0
        self.error: BaseException | None = None  # psycopg2 hides it behind QueryCanceled

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:  # type: ignore[override]
        while self._at >= len(self._chunk):
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.error = exc
                raise
            if chunk is None:
                return 0
            self._chunk, self._at = memoryview(chunk), 0
        size = min(len(target), len(self._chunk) - self._at)
        target[:size] = self._chunk[self._at : self._at + size]
        self._at += size
        return size


@contextmanager
def _opened(
    location: str | Path | LocalSource, max_bytes: int, timeout: float
) -> Iterator[LocalSource]:
    if isinstance(location, LocalSource):
        yield location
    else:
        with open_source(location, max_bytes=max_bytes, timeout=timeout) as local:
            yield local


def live_versions(conn: Connection) -> dict[str, Row]:
    """Each loaded layer's live version: version, rows_loaded, finished_at."""
    return {row.layer: row for row in conn.execute(text(sql.LIVE_VERSIONS))}


def default_run_by(how: str) -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} ({how})"


def _csv_chunks(reader: Reader, ctx: Context, tally: _Tally, progress: Progress) -> Iterator[bytes]:
    first = True
    for batch in reader.batches:
        if first:
            check_coordinates(batch.geometry, reader.crs, ctx.layer.id)
            first = False
        prepared = prepare_batch(batch, ctx)
        tally.read += batch.columns.num_rows
        tally.written += prepared.table.num_rows
        tally.repaired += prepared.repaired
        tally.outside += prepared.outside
        tally.add_rejects(prepared.rejects)
        progress(tally.read, reader.total)
        sink = io.BytesIO()
        pacsv.write_csv(prepared.table, sink, write_options=CSV_OPTIONS)
        yield sink.getvalue()


def _write_rejects(rejects: list[Reject], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "value", "reason"])
        writer.writerows((r.row, r.field, r.value, r.reason) for r in rejects)
    return path


def _boundary(conn: Connection, layer: Layer, catalogue: Catalogue | None) -> bytes | None:
    """The council boundary (plus the layer's tolerance), when there is one to check."""
    if catalogue is None or layer.id == catalogue.council.boundary_layer:
        return None
    table = catalogue.layers[catalogue.council.boundary_layer].table_name
    wkb = conn.execute(
        text(sql.boundary(table)), {"srid": layer.srid, "tolerance": layer.boundary_tolerance_m}
    ).scalar()
    return bytes(wkb) if wkb is not None else None


def _start_version(
    engine: Engine, layer: Layer, local: LocalSource, crs_in: str, run_by: str
) -> tuple[int, int]:
    with engine.begin() as conn:
        if not conn.execute(text(sql.TRY_LOCK_LAYER), {"layer": layer.id}).scalar():
            raise ServiceError(f"Another load of layer {layer.id} is in progress; try later.")
        conn.execute(text(sql.MARK_INTERRUPTED), {"layer": layer.id})
        version_id, version = conn.execute(
            text(sql.NEXT_VERSION),
            {
                "layer": layer.id, "source_uri": local.uri, "sha256": local.sha256,
                "crs_in": crs_in, "crs_out": layer.crs, "run_by": run_by,
            },
        ).one()  # fmt: skip
    return version_id, version


def _unique_key(conn: Connection, layer: Layer, staging: str, tally: _Tally) -> None:
    """A unique index on the key; only when that fails, find and reject the duplicates
    (rare, and a window query over every row costs more than the index)."""
    if not layer.key:
        return
    try:
        with conn.begin_nested():
            conn.execute(text(sql.unique_index(staging, layer.key)))
        return
    except IntegrityError:
        pass
    duplicates = conn.execute(text(sql.remove_duplicates(staging, layer.id_field, layer.key)))
    rejects = [
        Reject(row.fid, layer.key, row.key, f"duplicate {layer.key} (first at row {row.first})")
        for row in duplicates
    ]
    tally.written -= len(rejects)
    tally.add_rejects(rejects)
    conn.execute(text(sql.unique_index(staging, layer.key)))


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


def _swap_in(conn: Connection, layer: Layer, staging: str) -> None:
    previous = f"{layer.table_name}__previous"
    for statement in sql.swap(layer.table_name, staging, previous, _retired(layer)):
        conn.execute(text(statement))
    conn.execute(text(sql.RETIRE_PREVIOUS), {"layer": layer.id})
    conn.execute(text(sql.DEMOTE_LIVE), {"layer": layer.id})
    _rebuild_gazetteer(conn, layer)


def backfill_gazetteer(engine: Engine, catalogue: Catalogue) -> None:
    """Fill the search entries of layers loaded before they had any (an upgrade)."""
    with engine.begin() as conn:
        present = set(conn.execute(text("SELECT DISTINCT layer FROM app.gazetteer")).scalars())
        for layer in catalogue.layers.values():
            if layer.gazetteer and layer.id not in present:
                _rebuild_gazetteer(conn, layer)


def _rebuild_gazetteer(conn: Connection, layer: Layer) -> None:
    """The search box follows the live version, in the same transaction."""
    if layer.gazetteer is None:
        return
    conn.execute(text(sql.CLEAR_GAZETTEER), {"layer": layer.id})
    entry = layer.gazetteer
    conn.execute(
        text(sql.fill_gazetteer(layer.table_name, entry.field, entry.group)),
        {"layer": layer.id, "kind": entry.kind},
    )


def _drop_retired(engine: Engine, layer: Layer, catalogue: Catalogue | None) -> None:
    """Drop the tables a swap parked (outside the swap, which then stays short)."""
    layers = [layer, *(_derived(layer, catalogue) if catalogue else [])]
    with engine.begin() as conn:
        for each in layers:
            conn.execute(text(sql.drop_table(_retired(each))))


def _rebuild_derived(conn: Connection, parent: Layer, catalogue: Catalogue, run_by: str) -> None:
    """Derived layers follow their parent in the same transaction."""
    for layer in _derived(parent, catalogue):
        rule = layer.derived_from
        assert rule is not None
        version_id, version = conn.execute(
            text(sql.NEXT_VERSION),
            {
                "layer": layer.id, "source_uri": f"derived from {parent.id}", "sha256": None,
                "crs_in": parent.crs, "crs_out": layer.crs, "run_by": run_by,
            },
        ).one()  # fmt: skip
        staging = f"{layer.table_name}__v{version}"
        columns = [layer.id_field, *(f.name for f in layer.fields)]
        conn.execute(text(sql.drop_table(staging)))
        for statement in sql.derive(staging, parent.table_name, columns, rule.field):
            conn.execute(text(statement), {"values": [str(v) for v in rule.values]})
        for statement in sql.build_indexes(staging, []):
            conn.execute(text(statement))
        rows = conn.execute(text(f"SELECT count(*) FROM {sql.qualified(staging)}")).scalar_one()
        _swap_in(conn, layer, staging)
        conn.execute(
            text(sql.PROMOTE),
            {
                "id": version_id, "rows_read": rows, "rows_loaded": rows, "rows_rejected": 0,
                "rows_repaired": 0, "details": json.dumps({"derived_from": parent.id}),
            },
        )  # fmt: skip


def load_layer(
    engine: Engine,
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
    boundary and derived layers are rebuilt."""
    if layer.derived_from:
        raise ServiceError(f"Layer {layer.id} is derived from {layer.derived_from.layer}.")
    if layer.managed:
        raise ServiceError(f"Layer {layer.id} is maintained by the service; it is not loaded.")
    started = time.monotonic()
    source = source or layer.source or Source(path=str(location))
    ratio = layer.max_reject_ratio if max_reject_ratio is None else max_reject_ratio
    with _opened(location, max_download_bytes, download_timeout) as local:
        reader = open_reader(local.path, source, source_crs)
        check_columns(reader.columns, layer)
        version_id, version = _start_version(engine, layer, local, reader.crs.to_string(), run_by)
        tally = _Tally()
        details: dict[str, object] = {"etag": local.etag, "last_modified": local.last_modified}
        rejects_file = reports_dir / f"{layer.id}-v{version}-rejects.csv"
        staging = f"{layer.table_name}__v{version}"
        try:
            _drop_retired(engine, layer, catalogue)
            with engine.begin() as conn:
                for statement in [sql.LOCK_LAYER, *sql.LOAD_SETTINGS]:
                    conn.execute(text(statement), {"layer": layer.id})
                boundary = _boundary(conn, layer, catalogue)
                ctx = Context(layer, reader.crs, shapely.from_wkb(boundary) if boundary else None)
                conn.execute(text(sql.drop_table(staging)))
                table = layer_table(layer, staging)
                table.create(conn)
                stream = _CopyStream(_csv_chunks(reader, ctx, tally, progress))
                with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                    try:
                        cursor.copy_expert(
                            sql.copy_into(staging, [c.name for c in table.columns]), stream, 1 << 20
                        )
                    except psycopg2.Error:
                        if stream.error is not None:
                            raise stream.error from None
                        raise
                _unique_key(conn, layer, staging, tally)
                tally.rejected = tally.read - tally.written
                if not tally.read:
                    raise ServiceError(f"{local.path.name} has no features; nothing was changed.")
                if tally.rejected > ratio * tally.read or (tally.read and not tally.written):
                    first = min(tally.rejects, key=lambda r: r.row)
                    raise ServiceError(
                        f"Layer {layer.id}: {tally.rejected} of {tally.read} rows rejected "
                        f"(the limit is {ratio:.0%}); nothing was changed. First: row "
                        f"{first.row}, {first.field}: {first.reason}.",
                        hint=f"All rejects are listed in {rejects_file}.",
                    )
                for statement in sql.build_indexes(staging, _index_fields(layer, catalogue)):
                    conn.execute(text(statement))
                _swap_in(conn, layer, staging)
                details |= {
                    "transformation": ctx.transformation,
                    "rejects_file": str(rejects_file) if tally.rejects else None,
                    "rows_outside_boundary": tally.outside,
                    "seconds": round(time.monotonic() - started, 2),
                }
                conn.execute(
                    text(sql.PROMOTE),
                    {
                        "id": version_id, "rows_read": tally.read, "rows_loaded": tally.written,
                        "rows_rejected": tally.rejected, "rows_repaired": tally.repaired,
                        "details": json.dumps(details),
                    },
                )  # fmt: skip
                if catalogue:
                    _rebuild_derived(conn, layer, catalogue, run_by)
        except BaseException as exc:
            with engine.begin() as conn:
                conn.execute(
                    text(sql.FAIL_VERSION),
                    {
                        "id": version_id, "message": str(exc)[:2000] or type(exc).__name__,
                        "rows_read": tally.read, "rows_rejected": tally.read - tally.written,
                        "details": json.dumps(details),
                    },
                )  # fmt: skip
            raise
        finally:
            if tally.rejects:
                _write_rejects(tally.rejects, rejects_file)
        _drop_retired(engine, layer, catalogue)
    return LoadResult(
        layer=layer.id, version=version, rows_read=tally.read, rows_loaded=tally.written,
        rows_rejected=tally.rejected, rows_repaired=tally.repaired, rows_outside=tally.outside,
        rejects_file=rejects_file if tally.rejects else None,
        seconds=round(time.monotonic() - started, 2),
    )  # fmt: skip


def rollback_layer(engine: Engine, layer: Layer, catalogue: Catalogue | None = None) -> int:
    """Make the previous version live again (and the live one previous): renames only.
    Derived layers are rebuilt from the version now live."""
    with engine.begin() as conn:
        conn.execute(text(sql.LOCK_LAYER), {"layer": layer.id})
        previous = conn.execute(text(sql.PREVIOUS_ID), {"layer": layer.id}).scalar()
        if previous is None:
            raise ServiceError(f"Layer {layer.id} has no previous version to roll back to.")
        for statement in sql.exchange(layer.table_name, f"{layer.table_name}__previous"):
            conn.execute(text(statement))
        conn.execute(text(sql.DEMOTE_LIVE), {"layer": layer.id})
        version = conn.execute(text(sql.MAKE_LIVE), {"id": previous}).scalar_one()
        _rebuild_gazetteer(conn, layer)
        if catalogue:
            _rebuild_derived(conn, layer, catalogue, default_run_by("mapserver rollback"))
        return version
