"""Reading a source file as a stream of batches: attribute columns (Arrow) and shapely
geometries, never the whole file in memory (loaders.order holds a window of rows to
sort them).

CSV files are parsed with pyarrow (their geometry comes from coordinate columns); every
other format goes through GDAL with pyogrio's Arrow reader (imported only then).
"""

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from layers.model import Source
from loaders import deferred
from mapserver.errors import ServiceError

# Small enough that preparing one batch overlaps PostgreSQL parsing the previous one.
BATCH_ROWS = 25_000
CSV_BLOCK_BYTES = 4 << 20
# Column names recognised as coordinates when the catalogue names none, with the CRS
# their names imply.
X_NAMES = {"easting": "EPSG:27700", "x": None, "lon": "EPSG:4326", "lng": "EPSG:4326",
           "long": "EPSG:4326", "longitude": "EPSG:4326"}  # fmt: skip
Y_NAMES = {"northing": "EPSG:27700", "y": None, "lat": "EPSG:4326", "latitude": "EPSG:4326"}


@dataclass
class Batch:
    columns: pa.Table  # source attribute columns
    rows: np.ndarray  # 1-based source row number of each row (int64)
    wkb: pa.Array | None = None  # the geometries as the source gave them (GDAL's WKB)
    points: np.ndarray | None = None  # or made from coordinate columns (CSV)

    @cached_property
    def geometry(self) -> np.ndarray:
        """Shapely geometries (None where missing), in the source CRS. Parsed from the WKB
        when first asked, by the thread that prepares the batch: parsing is most of the
        reading time, and the reading thread then only waits for GDAL."""
        if self.points is not None:
            return self.points
        assert self.wkb is not None
        return shapely.from_wkb(self.wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")


@dataclass
class Reader:
    crs: CRS
    columns: list[str]
    batches: Iterator[Batch]
    # What GDAL says of the layer (its rows and extent, when cheap to know): read when
    # first asked, by the reading thread (GDAL releases the GIL), not before reading.
    describe: Callable[[], dict[str, Any]] = dict

    @cached_property
    def _described(self) -> dict[str, Any]:
        return self.describe()

    @property
    def total(self) -> int | None:
        """Rows, when cheap to know."""
        features = self._described.get("features")
        return features if features and features > 0 else None

    @property
    def extent(self) -> tuple[float, float, float, float] | None:
        """The extent the source declares (in its CRS), when cheap to know."""
        return self._described.get("total_bounds")


def _crs(text: str, what: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise ServiceError(f"{what} {text!r} is not a coordinate reference system.") from None


def _pick(columns: list[str], configured: str | None, names: dict[str, str | None]) -> str | None:
    if configured:
        return configured
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _csv_reader(path: Path, source: Source, source_crs: str | None) -> Reader:
    encoding = source.encoding or "utf8"
    try:
        header = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 16, encoding=encoding),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        ).schema.names
    except (pa.ArrowInvalid, LookupError) as exc:
        raise _unreadable(path, exc) from None
    x_col = _pick(header, source.x_field, X_NAMES)
    y_col = _pick(header, source.y_field, Y_NAMES)
    if not x_col or not y_col or x_col not in header or y_col not in header:
        raise ServiceError(
            f"{path.name}: no coordinate columns found (looked for "
            f"{source.x_field or '/'.join(X_NAMES)} and {source.y_field or '/'.join(Y_NAMES)}).",
            hint=f"Its columns are: {', '.join(header)}. Name them with source.x_field/y_field.",
        )
    implied = X_NAMES.get(x_col.strip().lower()) or Y_NAMES.get(y_col.strip().lower())
    crs_text = source_crs or source.crs or implied
    if not crs_text:
        raise ServiceError(
            f"{path.name} does not say which coordinate reference system its "
            f"{x_col}/{y_col} columns use.",
            hint="Give it with --source-crs (e.g. EPSG:27700) or source.crs in the catalogue.",
        )
    try:  # pyarrow parses the first block on opening
        stream = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=encoding),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _unreadable(path, exc) from None

    def batches() -> Iterator[Batch]:
        row = 1
        try:
            for record_batch in stream:
                table = pa.Table.from_batches([record_batch])
                x, y = _numbers(table[x_col]), _numbers(table[y_col])
                points = shapely.points(x, y)
                points[~(np.isfinite(x) & np.isfinite(y))] = None
                yield Batch(table, _numbered(row, table.num_rows), points=points)
                row += table.num_rows
        except pa.ArrowInvalid as exc:
            raise _unreadable(path, exc, row) from None

    return Reader(_crs(crs_text, "CRS"), header, batches())


def _numbered(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count, dtype=np.int64)


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """Floats, NaN where a value is missing or not a number (the row is then rejected)."""
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        pd = deferred.pandas()  # only for a batch with a bad value: off the common path
        return pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype=float)


def _unreadable(path: Path, exc: Exception, row: int | None = None) -> ServiceError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "UTF8" in text or "utf-8" in text.lower() or "decode" in text.lower():
        return ServiceError(
            f"{path.name} is not valid UTF-8 text{f' (near row {row})' if row else ''}.",
            hint="Give its encoding with source.encoding in the catalogue (e.g. latin-1).",
        )
    return ServiceError(f"Cannot read {path.name}: {re.sub(r'\s+', ' ', text)}")


def _ogr_reader(path: Path, source: Source, source_crs: str | None) -> Reader:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    stack = ExitStack()
    try:
        meta, stream = stack.enter_context(
            pyogrio.open_arrow(
                path, layer=source.layer, use_pyarrow=True, batch_size=BATCH_ROWS,
                encoding=source.encoding,
            )
        )  # fmt: skip
    except (DataSourceError, DataLayerError, ValueError) as exc:
        stack.close()
        raise _unreadable(path, exc) from None
    crs_text = source_crs or meta.get("crs") or source.crs
    if not crs_text:
        stack.close()
        raise ServiceError(
            f"{path.name} does not say which coordinate reference system it uses.",
            hint="Give it with --source-crs (e.g. EPSG:27700) or source.crs in the catalogue.",
        )
    geometry_column = meta.get("geometry_name") or "wkb_geometry"

    def describe() -> dict[str, Any]:
        try:
            return pyogrio.read_info(path, layer=source.layer, encoding=source.encoding)
        except (DataSourceError, DataLayerError, ValueError):  # it opened: says no more
            return {}

    def batches() -> Iterator[Batch]:
        row = 1
        with stack:
            try:
                for record_batch in stream:
                    table = pa.Table.from_batches([record_batch])
                    wkb = table[geometry_column].combine_chunks()
                    columns = table.drop_columns([geometry_column])
                    yield Batch(columns, _numbered(row, table.num_rows), wkb)
                    row += table.num_rows
            except (DataSourceError, DataLayerError, pa.ArrowInvalid, OSError) as exc:
                raise _unreadable(path, exc, row) from None

    columns = [str(c) for c in meta["fields"]]
    return Reader(_crs(crs_text, "CRS"), columns, batches(), describe)


def open_reader(path: Path, source: Source | None, source_crs: str | None = None) -> Reader:
    """A streaming reader for ``path``; ``source_crs`` overrides what the file says."""
    source = source or Source(path=str(path))
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        return _csv_reader(path, source, source_crs)
    return _ogr_reader(path, source, source_crs)
