"""Reading a layer's source file into a GeoDataFrame (pyogrio over GDAL)."""

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from layers.model import Source
from mapserver.errors import ServiceError


def read_source(path: Path, source: Source | None) -> gpd.GeoDataFrame:
    """Read ``path``; CSV files take their geometry from the configured x/y columns."""
    if not path.is_file():
        raise ServiceError(f"Source file {path} does not exist.")
    source = source or Source(path=str(path))
    try:
        if path.suffix.lower() == ".csv":
            return _read_csv(path, source)
        frame = pyogrio.read_dataframe(path, layer=source.layer)
    except (DataSourceError, DataLayerError) as exc:
        raise ServiceError(f"Cannot read {path.name}: {exc}") from None
    if frame.crs is None:
        if not source.crs:
            raise ServiceError(
                f"{path.name} does not say which coordinate reference system it uses.",
                hint="Give it with --source-crs (e.g. EPSG:27700) or source.crs in the catalogue.",
            )
        frame = frame.set_crs(source.crs)
    return frame


def _read_csv(path: Path, source: Source) -> gpd.GeoDataFrame:
    if not (source.x_field and source.y_field):
        raise ServiceError(
            f"{path.name} is a CSV file: the catalogue must name its x_field and y_field."
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in (source.x_field, source.y_field) if c not in frame.columns]
    if missing:
        raise ServiceError(
            f"{path.name} has no column {', '.join(missing)}; it has {', '.join(frame.columns)}."
        )
    x = pd.to_numeric(frame[source.x_field], errors="coerce")
    y = pd.to_numeric(frame[source.y_field], errors="coerce")
    geometry = gpd.points_from_xy(x, y)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=source.crs or "EPSG:4326")
