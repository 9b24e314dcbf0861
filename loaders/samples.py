"""First start: load the catalogue's sample layers into an empty database, once."""

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from layers.catalogue import Catalogue
from loaders import sql
from loaders.pipeline import LoadResult, default_run_by, load_layer
from mapserver.settings import PROJECT_DIR


def source_path(location: str) -> Path:
    """Catalogue paths are relative to the project folder unless absolute."""
    path = Path(location)
    return path if path.is_absolute() else PROJECT_DIR / path


def load_missing_samples(
    engine: Engine,
    catalogue: Catalogue,
    reports_dir: Path,
    progress: Callable[[LoadResult], None] = lambda result: None,
) -> list[LoadResult]:
    """Load each sample layer that has no live version. An advisory lock makes two
    processes starting together load each layer once."""
    results = []
    with engine.connect() as lock:
        lock.execute(text(sql.LOCK_SAMPLES))
        try:
            with engine.connect() as conn:
                live = {row.layer for row in conn.execute(text(sql.LIVE_LAYERS))}
            for layer in catalogue.sample_layers:
                if layer.id in live or layer.source is None or layer.source.path is None:
                    continue
                result = load_layer(
                    engine,
                    layer,
                    source_path(layer.source.path),
                    reports_dir=reports_dir,
                    run_by=default_run_by("sample data"),
                )
                progress(result)
                results.append(result)
        finally:
            lock.execute(text(sql.UNLOCK_SAMPLES))
            lock.commit()
    return results
