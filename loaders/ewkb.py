"""Geometries as EWKB for binary COPY, built with numpy on the whole batch at once.

GEOS's writer plus ``set_srid`` plus building one-part multi-geometries costs about
1.4 µs a point; writing plain WKB once and then inserting the SRID (and, for single parts
in a Multi- layer, a one-part multi header) into the concatenated bytes costs a fifth of
that. The output is exactly PostGIS's EWKB: little-endian, 2D, SRID flag 0x20000000.
"""

import numpy as np
import pyarrow as pa
import shapely

SRID_FLAG = 0x20000000
SINGLE_TO_MULTI = {1: 4, 2: 5, 3: 6}  # WKB type codes: Point, LineString, Polygon
POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])
MULTIPOINT_OF_ONE = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("count", "<u4"), ("point", "u1"),
     ("point_type", "<u4"), ("x", "<f8"), ("y", "<f8")]
)  # fmt: skip


def _le32(values: np.ndarray) -> np.ndarray:
    """Each value as 4 little-endian bytes, shape (n, 4)."""
    return values.astype("<u4").view(np.uint8).reshape(-1, 4)


def _points(geoms: np.ndarray, srid: int, promote: bool) -> tuple[np.ndarray, np.ndarray]:
    """Points need no GEOS writer at all: a fixed-size record per point."""
    xy = shapely.get_coordinates(geoms)
    records = np.empty(len(geoms), dtype=MULTIPOINT_OF_ONE if promote else POINT)
    records["order"] = 1
    records["srid"] = srid
    records["x"], records["y"] = xy[:, 0], xy[:, 1]
    if promote:
        records["type"] = 4 | SRID_FLAG
        records["count"], records["point"], records["point_type"] = 1, 1, 1
    else:
        records["type"] = 1 | SRID_FLAG
    lengths = np.full(len(geoms), records.dtype.itemsize, dtype=np.int64)
    return records.view(np.uint8), lengths


def _any(geoms: np.ndarray, srid: int, promote: bool) -> tuple[np.ndarray, np.ndarray]:
    """Plain WKB from GEOS, then the SRID (or a one-part multi header) inserted."""
    wkb = shapely.to_wkb(geoms, byte_order=1, output_dimension=2, flavor="extended")
    lengths = np.fromiter(map(len, wkb), dtype=np.int64, count=len(wkb))
    data = np.frombuffer(b"".join(wkb), dtype=np.uint8).copy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    types = data[starts[:, None] + np.arange(1, 5)].copy().view("<u4").ravel()
    wrap = promote & np.isin(types, list(SINGLE_TO_MULTI))

    # Geometries kept as they are: set the SRID flag and insert the SRID after the type.
    keep = np.flatnonzero(~wrap)
    data[starts[keep] + 4] |= SRID_FLAG >> 24
    srid_bytes = _le32(np.array([srid]))[0]
    positions = [np.repeat(starts[keep] + 5, 4)]
    values = [np.tile(srid_bytes, len(keep))]
    # Single parts in a Multi- layer: a multi header with the SRID and a count of 1 before.
    wrapped = np.flatnonzero(wrap)
    if len(wrapped):
        header = np.empty((len(wrapped), 13), dtype=np.uint8)
        header[:, 0] = 1
        multi = np.vectorize(SINGLE_TO_MULTI.get, otypes=[np.uint32])(types[wrapped])
        header[:, 1:5] = _le32(multi | SRID_FLAG)
        header[:, 5:9] = srid_bytes
        header[:, 9:13] = _le32(np.array([1]))[0]
        positions.append(np.repeat(starts[wrapped], 13))
        values.append(header.ravel())
    order = np.concatenate(positions)
    sort = np.argsort(order, kind="stable")
    out = np.insert(data, order[sort], np.concatenate(values)[sort])
    return out, lengths + np.where(wrap, 13, 4)


def ewkb(geoms: np.ndarray, srid: int, promote: bool) -> pa.LargeBinaryArray:
    """EWKB with ``srid``; with ``promote``, single parts become one-part multis."""
    if len(geoms) and (shapely.get_type_id(geoms) == 0).all():
        data, lengths = _points(geoms, srid, promote)
    else:
        data, lengths = _any(geoms, srid, promote)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(geoms), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
