"""``mapserver refresh``: reload the layers whose source changed, for cron or a timer.

A layer with a ``refresh`` schedule is checked when its last check is older than the
schedule; a layer named explicitly is checked now. A URL is asked conditionally
(ETag / Last-Modified), then compared by sha256 like a local file.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from layers.catalogue import Catalogue, load_catalogue
from layers.model import Layer
from loaders import sql
from loaders.pipeline import LoadResult, default_run_by, load_layer
from loaders.samples import source_location
from loaders.sources import open_source
from mapserver.errors import ServiceError
from mapserver.settings import Settings

log = logging.getLogger("loaders.refresh")

INTERVALS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}

LAST_CHECK = "SELECT checked_at, etag, last_modified FROM app.source_checks WHERE layer = :layer"
RECORD_CHECK = """
INSERT INTO app.source_checks (layer, checked_at, outcome, etag, last_modified, sha256)
VALUES (:layer, now(), :outcome, :etag, :last_modified, :sha256)
ON CONFLICT (layer) DO UPDATE SET checked_at = now(), outcome = :outcome,
    etag = coalesce(:etag, source_checks.etag),
    last_modified = coalesce(:last_modified, source_checks.last_modified),
    sha256 = coalesce(:sha256, source_checks.sha256)
"""


@dataclass(frozen=True)
class Outcome:
    layer: str
    state: str  # loaded, unchanged, not due, failed
    detail: str = ""
    result: LoadResult | None = None


def _due(layer: Layer, last_check: datetime | None, now: datetime) -> bool:
    if layer.refresh is None or last_check is None:
        return True
    return now - last_check >= INTERVALS[layer.refresh]


def refresh(
    engine: Engine,
    catalogue: Catalogue,
    layer_ids: list[str] | None,
    *,
    reports_dir: Path,
    now: datetime | None = None,
) -> list[Outcome]:
    now = now or datetime.now(UTC)
    if layer_ids:
        layers = [catalogue.layer(layer_id) for layer_id in layer_ids]
    else:
        layers = [layer for layer in catalogue.layers.values() if layer.refresh and layer.source]
    outcomes = []
    for layer in layers:
        outcomes.append(_refresh_one(engine, catalogue, layer, reports_dir, now, bool(layer_ids)))
    return outcomes


def run_once(engine: Engine, settings: Settings) -> int:
    """Worker task: refresh the layers that are due; the number reloaded. A layer whose
    check failed is logged (and recorded in app.source_checks); the others go on."""
    outcomes = refresh(
        engine, load_catalogue(settings.catalogue_path), None,
        reports_dir=settings.state_dir / "loads",
    )  # fmt: skip
    for outcome in outcomes:
        if outcome.state == "failed":
            log.warning("refresh of %s failed: %s", outcome.layer, outcome.detail)
    return sum(outcome.state == "loaded" for outcome in outcomes)


def _refresh_one(
    engine: Engine, catalogue: Catalogue, layer: Layer, reports_dir: Path, now: datetime,
    forced: bool,
) -> Outcome:  # fmt: skip
    location = source_location(layer)
    if location is None:
        return Outcome(layer.id, "failed", "the catalogue names no source")
    with engine.connect() as conn:
        check = conn.execute(text(LAST_CHECK), {"layer": layer.id}).one_or_none()
        live = conn.exec_driver_sql(sql.LIVE_VERSION, {"layer": layer.id}).one_or_none()
    if not forced and not _due(layer, check.checked_at if check else None, now):
        return Outcome(layer.id, "not due")
    record = {"layer": layer.id, "etag": None, "last_modified": None, "sha256": None}
    try:
        with open_source(
            location,
            etag=check.etag if check and live else None,
            last_modified=check.last_modified if check and live else None,
        ) as local:
            record |= {"etag": local.etag, "last_modified": local.last_modified}
            if local.not_modified or (live and local.sha256 == live.sha256):
                outcome = Outcome(layer.id, "unchanged")
            else:
                record["sha256"] = local.sha256
                result = load_layer(
                    engine, layer, local, reports_dir=reports_dir, catalogue=catalogue,
                    run_by=default_run_by("mapserver refresh"),
                )  # fmt: skip
                outcome = Outcome(layer.id, "loaded", f"version {result.version}", result)
    except ServiceError as exc:
        outcome = Outcome(layer.id, "failed", str(exc))
    with engine.begin() as conn:
        conn.execute(text(RECORD_CHECK), record | {"outcome": outcome.state})
    return outcome
