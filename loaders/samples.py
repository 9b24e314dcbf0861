"""First start: load the catalogue's sample layers into an empty database, once.
Synthetic layers whose files are missing are generated first (deterministically)."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from layers.catalogue import Catalogue
from layers.model import Layer
from loaders import sql
from loaders.pipeline import LoadResult, default_run_by, live_versions, load_layer
from loaders.sources import is_url
from mapserver.settings import PROJECT_DIR

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def source_path(location: str) -> str | Path:
    """Catalogue paths are relative to the project folder unless absolute; URLs stay."""
    if is_url(location):
        return location
    path = Path(location)
    return path if path.is_absolute() else PROJECT_DIR / path


def source_location(layer: Layer) -> str | Path | None:
    if layer.source is None:
        return None
    return source_path(layer.source.path or layer.source.url or "")


def _generate_missing(catalogue: Catalogue, layers: list[Layer]) -> None:
    missing = [
        layer.id
        for layer in layers
        if layer.synthetic
        and isinstance(location := source_location(layer), Path)
        and not location.exists()
    ]
    if missing:
        from loaders.synth import generate  # heavy; only needed on a first start

        generate(catalogue, only=missing)


def load_missing_samples(
    engine: "Engine",
    catalogue: Catalogue,
    reports_dir: Path,
    progress: Callable[[LoadResult], None] = lambda result: None,
) -> list[LoadResult]:
    """Load each sample layer that has no live version, the boundary first (the others
    are checked against it). An advisory lock makes two processes starting together load
    each layer once."""
    results = []
    with engine.connect() as lock:
        lock.exec_driver_sql(sql.LOCK_SAMPLES)
        try:
            with engine.connect() as conn:
                live = live_versions(conn)
            todo = [
                layer
                for layer in catalogue.sample_layers
                if layer.id not in live and layer.source is not None
            ]
            todo.sort(key=lambda layer: layer.id != catalogue.council.boundary_layer)
            _generate_missing(catalogue, todo)
            for layer in todo:
                result = load_layer(
                    engine, layer, source_location(layer),  # type: ignore[arg-type]
                    reports_dir=reports_dir, run_by=default_run_by("sample data"),
                    catalogue=catalogue,
                )  # fmt: skip
                progress(result)
                results.append(result)
        finally:
            lock.exec_driver_sql(sql.UNLOCK_SAMPLES)
            lock.commit()
    return results
