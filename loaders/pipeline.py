"""Loading one layer: read, prepare, bulk-copy into a staging table, index, then swap it
in. Everything after the provenance record happens in one transaction, so readers see
the old version or the new one, never half of one, and a failed or killed load leaves
the previous version serving."""

import csv
import getpass
import hashlib
import io
import json
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from layers.model import Layer, Source
from layers.tables import layer_table
from loaders import sql
from loaders.prepare import Prepared, Reject, prepare
from loaders.read import read_source
from mapserver.errors import ServiceError

DEFAULT_MAX_REJECT_RATIO = 0.01


@dataclass(frozen=True)
class LoadResult:
    layer: str
    version: int
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_repaired: int
    rejects_file: Path | None


def default_run_by(how: str) -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} ({how})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_rejects(rejects: list[Reject], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "value", "reason"])
        writer.writerows((r.row, r.field, r.value, r.reason) for r in rejects)
    return path


def _copy(connection: object, table: str, prepared: Prepared) -> None:
    """Bulk write with COPY (text CSV); geometry travels as hex EWKB."""
    buffer = io.StringIO()
    prepared.frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.copy_expert(sql.copy_into(table, list(prepared.frame.columns)), buffer)


def load_layer(
    engine: Engine,
    layer: Layer,
    path: Path,
    *,
    reports_dir: Path,
    run_by: str,
    source: Source | None = None,
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
) -> LoadResult:
    """Load ``path`` as the new live version of ``layer``, or change nothing and raise."""
    path = Path(path)
    source = source or layer.source
    frame = read_source(path, source)
    crs_in = frame.crs.to_string() if frame.crs else None
    prepared = prepare(frame, layer)
    with engine.begin() as conn:
        version_id, version = conn.execute(
            text(sql.NEXT_VERSION),
            {
                "layer": layer.id,
                "source_uri": str(path),
                "sha256": _sha256(path),
                "crs_out": layer.crs,
                "run_by": run_by,
            },
        ).one()
    rejected_rows = prepared.rows_read - len(prepared.frame)
    rejects_file = None
    if prepared.rejects:
        rejects_file = _write_rejects(
            prepared.rejects, reports_dir / f"{layer.id}-v{version}-rejects.csv"
        )
    try:
        if rejected_rows > max_reject_ratio * prepared.rows_read:
            first = prepared.rejects[0]
            raise ServiceError(
                f"Layer {layer.id}: {rejected_rows} of {prepared.rows_read} rows rejected "
                f"(more than {max_reject_ratio:.0%}); nothing was changed. First: row "
                f"{first.row}, {first.field}: {first.reason}.",
                hint=f"All rejects are listed in {rejects_file}.",
            )
        staging = f"{layer.table_name}__v{version}"
        with engine.begin() as conn:
            conn.execute(text(sql.LOCK_LAYER), {"layer": layer.id})
            conn.execute(text(sql.drop_table(staging)))
            layer_table(layer, staging).create(conn)
            _copy(conn.connection.driver_connection, staging, prepared)
            for statement in sql.build_indexes(staging):
                conn.execute(text(statement))
            for statement in sql.swap(layer.table_name, staging, f"{layer.table_name}__previous"):
                conn.execute(text(statement))
            conn.execute(text(sql.RETIRE_PREVIOUS), {"layer": layer.id})
            conn.execute(text(sql.DEMOTE_LIVE), {"layer": layer.id})
            conn.execute(
                text(sql.PROMOTE),
                {
                    "id": version_id,
                    "rows_read": prepared.rows_read,
                    "rows_loaded": len(prepared.frame),
                    "rows_rejected": rejected_rows,
                    "rows_repaired": prepared.repaired,
                    "crs_in": crs_in,
                    "details": json.dumps(
                        {"rejects_file": str(rejects_file) if rejects_file else None}
                    ),
                },
            )
    except Exception as exc:
        with engine.begin() as conn:
            conn.execute(
                text(sql.FAIL_VERSION),
                {
                    "id": version_id,
                    "message": str(exc)[:2000],
                    "rows_read": prepared.rows_read,
                    "rows_rejected": rejected_rows,
                },
            )
        raise
    return LoadResult(
        layer=layer.id,
        version=version,
        rows_read=prepared.rows_read,
        rows_loaded=len(prepared.frame),
        rows_rejected=rejected_rows,
        rows_repaired=prepared.repaired,
        rejects_file=rejects_file,
    )
