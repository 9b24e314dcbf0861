"""Turning a source batch into rows of a layer's table: fields mapped and typed,
geometry reprojected, checked against the layer's type and the council boundary,
repaired when invalid, promoted to Multi- types; bad rows rejected with a reason.

Typing takes Arrow's vectorised casts; only a batch where a cast fails goes through the
slower per-value path, which finds the rows to reject.
"""

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from layers.model import Layer, LayerField
from loaders import deferred
from loaders.order import centres
from loaders.read import Batch
from loaders.wkb import wkb
from mapserver.errors import ServiceError

if TYPE_CHECKING:
    import pandas as pd

ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
}
TYPE_NAMES = ["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
              "MultiPolygon", "GeometryCollection"]  # fmt: skip
# Shapely type ids a layer of each geometry type accepts, and what single parts promote to.
ACCEPTS = {"Point": {0}, "LineString": {1}, "Polygon": {3},
           "MultiPoint": {0, 4}, "MultiLineString": {1, 5}, "MultiPolygon": {3, 6}}  # fmt: skip
DIMENSION = {"Point": 0, "LineString": 1, "Polygon": 2}
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Reject:
    row: int  # 1-based row number in the source
    field: str
    value: str
    reason: str


@dataclass
class PreparedBatch:
    table: pa.Table  # id, fields..., geom (WKB): the table's columns, in order
    centres: np.ndarray  # each row's bounding-box centre (n x 2), to sort the rows by
    rejects: list[Reject] = field(default_factory=list)
    repaired: int = 0
    outside: int = 0


@dataclass
class Context:
    """What stays the same for every batch of one load."""

    layer: Layer
    source_crs: CRS
    boundary: shapely.Geometry | None  # council boundary plus tolerance, in the layer CRS

    def __post_init__(self) -> None:
        target = CRS.from_epsg(self.layer.srid)
        self.transformer: Transformer | None = None
        self.transform: Callable[[np.ndarray, np.ndarray], tuple] | None = None
        self.transformation = "none"
        if not self.source_crs.equals(target):
            # PROJ picks the most accurate operation it has: OSTN15 for British National
            # Grid when its grid file is installed (data/proj/), else a Helmert fit (~2 m).
            self.transformer = Transformer.from_crs(self.source_crs, target, always_xy=True)
            self.transform = self.transformer.transform
            self.transformation = self.transformer.description
        if self.boundary is not None:
            shapely.prepare(self.boundary)

    def extent_of(
        self, bounds: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float] | None:
        """``bounds`` in the source CRS as an extent in the layer's (None if it has none)."""
        if self.transformer is None:
            return bounds
        with suppress(ProjError):
            extent = self.transformer.transform_bounds(*bounds)
            if np.isfinite(extent).all():
                return extent
        return None

    def for_another_thread(self) -> "Context":
        """A copy with a boundary and a transformer of its own (neither is thread-safe)."""
        boundary = None if self.boundary is None else shapely.from_wkb(self.boundary.wkb)
        return Context(self.layer, self.source_crs, boundary)


def check_columns(columns: list[str], layer: Layer) -> None:
    missing = [f.source_name for f in layer.fields if f.source_name not in columns]
    if missing:
        raise ServiceError(
            f"The source has no column {', '.join(missing)} for layer {layer.id}.",
            hint=f"Its columns are: {', '.join(columns)}. Map them with `source:` in the "
            "catalogue.",
        )


def check_coordinates(geoms: np.ndarray, crs: CRS, name: str) -> None:
    """Refuse lon/lat that look like eastings/northings, and the reverse."""
    present = geoms[~shapely.is_missing(geoms)]
    if not len(present):
        return
    minx, miny, maxx, maxy = shapely.total_bounds(present)
    looks_lonlat = -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90
    if crs.is_geographic and not looks_lonlat:
        raise ServiceError(
            f"{name}: coordinates such as ({maxx:.0f}, {maxy:.0f}) look like eastings and "
            f"northings, but the source CRS is {crs.to_string()} (longitude/latitude).",
            hint="Give the right CRS with --source-crs (EPSG:27700 for British National Grid).",
        )
    if crs.is_projected and looks_lonlat and max(abs(maxx), abs(maxy)) > 1:
        raise ServiceError(
            f"{name}: coordinates such as ({maxx:.5f}, {maxy:.5f}) look like longitude and "
            f"latitude, but the source CRS is {crs.to_string()}.",
            hint="Give the right CRS with --source-crs (EPSG:4326 for longitude/latitude).",
        )


def _slow_coerce(values: "pd.Series", kind: str) -> tuple["pd.Series", "pd.Series"]:
    """Typed values and a mask of present values that do not fit the type."""
    pd = deferred.pandas()  # only when a vectorised cast failed: off the common path

    present = values.notna() & (values.astype(str).str.strip() != "")
    if kind in ("integer", "number"):
        numbers = pd.to_numeric(values.where(present), errors="coerce")
        bad = present & numbers.isna()
        if kind == "integer":
            bad |= present & numbers.notna() & (numbers != np.floor(numbers))
            numbers = numbers.where(~bad)
        return numbers, bad
    if kind == "boolean":
        text = values.where(present).astype(str).str.strip().str.lower()
        typed = text.map(lambda v: True if v in TRUE else False if v in FALSE else None)
        return typed, present & typed.isna()
    parsed = pd.to_datetime(values.where(present), errors="coerce", utc=True, format="mixed")
    return parsed, present & parsed.isna()


def _has_nul(column: pa.ChunkedArray) -> bool:
    """Whether a text column may hold a NUL: a scan of its bytes (0.1 ms a batch) spares
    the replace (up to 6 ms) on the columns that have none, nearly all."""
    return any(
        chunk.buffers()[2] is not None and not np.frombuffer(chunk.buffers()[2], np.uint8).all()
        for chunk in column.chunks
    )


def coerce(column: pa.ChunkedArray, spec: LayerField) -> tuple[pa.Array, np.ndarray]:
    """The column in the field's type, and a mask of rows whose value does not fit."""
    target = ARROW_TYPES[spec.type]
    ok = np.zeros(len(column), dtype=bool)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        if _has_nul(column):
            column = pc.replace_substring(column, "\x00", "")  # PostgreSQL text refuses NUL
        if spec.type != "string":
            column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), None, column)
    try:
        typed = pc.cast(column, target).combine_chunks()
        if spec.type == "number":
            typed = pc.if_else(pc.is_nan(typed), None, typed)  # NaN is no measurement
        return typed, ok
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    deferred.pandas()  # before pyarrow's to_pandas
    typed, bad = _slow_coerce(column.to_pandas(), spec.type)
    if spec.type == "date":
        typed = typed.dt.date
    array = pa.array(typed.where(~bad, None).astype(object), type=target, from_pandas=True)
    return array, bad.to_numpy()


def _geometry(
    geoms: np.ndarray, ctx: Context, rejects: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometries in the layer's CRS, checked against its type and the boundary (single
    parts in a Multi- layer are promoted later, when encoded); fills ``rejects``.
    Returns the geometries and masks of those repaired (and kept) and of those outside."""
    layer = ctx.layer
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    rejects[missing] = "no geometry"
    types = shapely.get_type_id(geoms)
    wrong = ~missing & ~np.isin(types, list(ACCEPTS[layer.geometry]))
    for index in np.flatnonzero(wrong):
        rejects[index] = f"{TYPE_NAMES[types[index]]} in a {layer.geometry} layer"
    ok = ~missing & ~wrong
    if ctx.transform is not None and ok.any():
        geoms[ok] = shapely.transform(geoms[ok], ctx.transform, interleaved=False)
        bad_coords = ok.copy()
        bad_coords[ok] = ~np.isfinite(shapely.bounds(geoms[ok])).all(axis=1)
        rejects[bad_coords] = "coordinates cannot be transformed to the layer's CRS"
        ok &= ~bad_coords
    invalid = np.zeros_like(ok)
    if not layer.geometry.endswith("Point") and ok.any():
        invalid[ok] = ~shapely.is_valid(geoms[ok])
        if invalid.any():
            dimension = DIMENSION[layer.geometry.removeprefix("Multi")]
            fixed = shapely.make_valid(geoms[invalid])
            fixed = np.array([_parts_of_dimension(g, dimension) for g in fixed], dtype=object)
            geoms[invalid] = fixed
            emptied = np.zeros_like(ok)
            emptied[invalid] = shapely.is_empty(fixed)
            rejects[emptied] = "geometry could not be repaired"
            ok &= ~emptied
            if not layer.geometry.startswith("Multi"):
                multi = ok & invalid & (shapely.get_type_id(geoms) > 3)
                rejects[multi] = f"repaired geometry is no longer a single {layer.geometry}"
                ok &= ~multi
    outside = np.zeros_like(ok)
    if ctx.boundary is not None and ok.any():
        outside[ok] = ~shapely.intersects(ctx.boundary, geoms[ok])
        if layer.outside_boundary == "reject":
            rejects[outside] = "outside the council boundary"
            ok &= ~outside
    return geoms, invalid & ok, outside


def _parts_of_dimension(geom: shapely.Geometry, dimension: int) -> shapely.Geometry:
    """``make_valid`` may return a collection: keep the parts of the layer's dimension."""
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dimension]
    return shapely.union_all(parts) if parts else shapely.Point()


def prepare_batch(batch: Batch, ctx: Context) -> PreparedBatch:
    layer = ctx.layer
    rows = len(batch.rows)  # a source with no attribute columns has a 0-row table
    reasons = np.full(rows, None, dtype=object)
    # From the buffer: pa.array() of a numpy array imports numpy.ma (6 ms, in every load).
    ids = pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(batch.rows)])
    columns: dict[str, pa.Array] = {layer.id_field: ids}
    field_rejects: list[Reject] = []
    for spec in layer.fields:
        source = batch.columns[spec.source_name]
        typed, bad = coerce(source, spec)
        columns[spec.name] = typed
        for index in np.flatnonzero(bad):
            field_rejects.append(
                Reject(int(batch.rows[index]), spec.source_name, str(source[index]),
                       f"not a valid {spec.type}")
            )  # fmt: skip
            reasons[index] = reasons[index] or "field"
    geoms, repaired, outside = _geometry(batch.geometry.copy(), ctx, reasons)
    geometry_rejects = [
        Reject(int(batch.rows[i]), "geometry", "", reasons[i])
        for i in np.flatnonzero(reasons != None)  # noqa: E711 (element-wise)
        if reasons[i] != "field"
    ]
    keep = reasons == None  # noqa: E711 (element-wise)
    # Filtering copies every column: only when a row was rejected.
    everything = bool(keep.all())
    mask = None if everything else pa.array(keep, pa.bool_())
    kept = geoms if everything else geoms[keep]
    # The source's WKB serves where the geometry is unchanged; single parts in a Multi-
    # layer are promoted as they are encoded.
    unchanged = ~repaired[keep] if ctx.transform is None else np.zeros(len(kept), bool)
    source = batch.wkb if batch.wkb is None or everything else batch.wkb.filter(mask)
    columns["geom"] = wkb(kept, source, unchanged, layer.geometry.startswith("Multi"))
    table = pa.table(
        {name: (array if name == "geom" or everything else array.filter(mask))
         for name, array in columns.items()}
    )  # fmt: skip
    return PreparedBatch(
        table=table,
        centres=centres(kept),
        rejects=sorted(field_rejects + geometry_rejects, key=lambda r: r.row),
        repaired=int(repaired.sum()),
        outside=int(outside.sum()),
    )
