"""Geometries as WKB for binary COPY, built on the whole batch at once.

PostGIS takes plain WKB into a typed column (``geometry(MultiPolygon, 27700)``) and gives
it the column's SRID, so none is written. A geometry the loader did not change (not
reprojected, not repaired) goes as the source's own WKB when that is plain little-endian
2D WKB: GDAL wrote it already, and GEOS writing it again costs as much as the validity
check. Points are fixed-size records built with numpy from their coordinates. Single
parts in a Multi- layer get a one-part multi header in front (joined by Arrow).
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from loaders.pgbinary import EMPTY, binary_array

MULTI_OF = np.array([0, 4, 5, 6], dtype="<u4")  # WKB type codes: Point, LineString, Polygon
POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
MULTIPOINT_OF_ONE = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("count", "<u4"), ("point", "u1"), ("point_type", "<u4"),
     ("x", "<f8"), ("y", "<f8")]
)  # fmt: skip
MULTI_HEADER = np.dtype([("order", "u1"), ("type", "<u4"), ("count", "<u4")])


def _points(geoms: np.ndarray, promote: bool) -> pa.LargeBinaryArray:
    """Points need no GEOS writer at all: a fixed-size record per point."""
    xy = shapely.get_coordinates(geoms)
    records = np.empty(len(geoms), dtype=MULTIPOINT_OF_ONE if promote else POINT)
    records["order"] = 1
    records["x"], records["y"] = xy[:, 0], xy[:, 1]
    if promote:
        records["type"], records["count"], records["point"], records["point_type"] = 4, 1, 1, 1
    else:
        records["type"] = 1
    return binary_array(records.view(np.uint8), np.full(len(geoms), records.dtype.itemsize))


def _types(values: pa.Array) -> np.ndarray:
    """Each value's WKB type code when it is plain little-endian 2D WKB (1 to 7), else 0."""
    values = values.cast(pa.large_binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2] or b"", dtype=np.uint8)
    starts = offsets[:-1]
    whole = (np.diff(offsets) >= 5) & values.is_valid().to_numpy(zero_copy_only=False)
    codes = np.zeros(len(values), dtype=np.uint32)
    at = starts[whole]
    for byte in range(4):
        codes[whole] |= data[at + 1 + byte].astype(np.uint32) << (8 * byte)
    codes[whole] *= data[at] == 1
    return np.where((codes >= 1) & (codes <= 7), codes, 0)


def wkb(
    geoms: np.ndarray, source: pa.Array | None, unchanged: np.ndarray, promote: bool
) -> pa.LargeBinaryArray:
    """WKB of ``geoms``: the ``source`` WKB where ``unchanged`` and plain, else written anew;
    with ``promote``, single parts become one-part multis."""
    if len(geoms) and (shapely.get_type_id(geoms) == 0).all():
        return _points(geoms, promote)
    codes = _types(source) if source is not None else np.zeros(len(geoms), dtype=np.uint32)
    reuse = unchanged & (codes > 0)
    if reuse.all():
        values = source.cast(pa.large_binary())  # type: ignore[union-attr]
    else:
        fresh = shapely.to_wkb(geoms[~reuse], byte_order=1, output_dimension=2)
        merged = np.empty(len(geoms), dtype=object)
        merged[~reuse] = fresh
        if reuse.any():
            merged[reuse] = source.filter(pa.array(reuse)).to_numpy(zero_copy_only=False)  # type: ignore[union-attr]
        values = pa.array(merged, pa.large_binary())
    if not promote:
        return values
    types = codes if reuse.all() else _types(values)
    wrap = (types >= 1) & (types <= 3)
    if not wrap.any():
        return values
    headers = np.zeros(int(wrap.sum()), dtype=MULTI_HEADER)
    headers["order"], headers["type"], headers["count"] = 1, MULTI_OF[types[wrap]], 1
    prefix = binary_array(headers.view(np.uint8), np.where(wrap, MULTI_HEADER.itemsize, 0))
    return pc.binary_join_element_wise(prefix, values, EMPTY)
