"""Arrow tables in PostgreSQL's binary COPY format, built column by column with numpy and
joined row by row by Arrow (``binary_join_element_wise``): no value passes through
Python. Binary COPY spares the server parsing text (and hex-decoding every geometry),
about half of its COPY work on a polygon layer.

Each row is a 16-bit field count, then per field a 32-bit length (-1 for NULL) and the
value in its type's binary form: big-endian integers and floats, UTF-8 text, dates as
days and timestamps as microseconds since 2000-01-01, geometry as EWKB.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no header extension
TRAILER = b"\xff\xff"
PG_EPOCH_DAYS = 10_957  # from 1970-01-01 to 2000-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
# Built from buffers: pa.scalar() would import pandas (see loaders.deferred).
EMPTY = pa.LargeBinaryArray.from_buffers(
    pa.large_binary(), 1, [None, pa.py_buffer(bytes(16)), pa.py_buffer(b"")]
)[0]


def binary_array(data: np.ndarray, lengths: np.ndarray) -> pa.LargeBinaryArray:
    """One binary value per row, from the rows' concatenated bytes and their lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(lengths), buffers)


def _records(prefix: bytes, lengths: np.ndarray, value: np.dtype | None = None) -> np.ndarray:
    """Per row: ``prefix`` (the field count, on the first column), a length, a value."""
    fields = [("prefix", f"V{len(prefix)}")] if prefix else []
    fields += [("length", ">i4")] + ([("value", value)] if value is not None else [])
    rows = np.empty(len(lengths), dtype=fields)
    if prefix:
        rows["prefix"] = np.void(prefix)
    rows["length"] = lengths
    return rows


def _fixed(values: np.ndarray, valid: np.ndarray, prefix: bytes) -> pa.LargeBinaryArray:
    """A fixed-width column (``values`` big-endian): a NULL is the length -1 alone."""
    width = values.dtype.itemsize
    rows = _records(prefix, np.where(valid, width, -1), values.dtype)
    rows["value"] = values
    raw = rows.view(np.uint8).reshape(len(values), rows.dtype.itemsize)
    if valid.all():
        return binary_array(raw, np.full(len(values), rows.dtype.itemsize))
    keep = np.ones(raw.shape, dtype=bool)
    keep[~valid, -width:] = False
    return binary_array(raw[keep], np.where(valid, width, 0) + rows.dtype.itemsize - width)


# Arrow type test, the integer type its values go through, and their binary form.
FIXED = [
    (pa.types.is_integer, pa.int64(), ">i8", 0),
    (pa.types.is_floating, pa.float64(), ">f8", 0),
    (pa.types.is_boolean, pa.uint8(), ">u1", 0),
    (pa.types.is_date32, pa.int32(), ">i4", PG_EPOCH_DAYS),
    (pa.types.is_timestamp, pa.int64(), ">i8", PG_EPOCH_US),
]


def _field(column: pa.Array, prefix: bytes) -> list[pa.Array]:
    """A column as the parts it adds to each row: its length, then its value."""
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    for matches, through, binary, epoch in FIXED:
        if matches(column.type):
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.timestamp("us", tz=column.type.tz))
            values = column.cast(through).fill_null(0).to_numpy(zero_copy_only=False)
            return [_fixed((values - epoch if epoch else values).astype(binary), valid, prefix)]
    # Text and binary (geometry): lengths from the offsets, then the bytes as they are.
    data = column.cast(pa.large_binary())
    lengths = pc.binary_length(data).fill_null(-1).to_numpy(zero_copy_only=False)
    heads = _records(prefix, lengths)
    size = np.full(len(column), heads.dtype.itemsize)
    return [binary_array(heads.view(np.uint8), size), data.fill_null(b"")]


def encode_rows(table: pa.Table) -> pa.LargeBinaryArray:
    """Each row of ``table`` as one binary value, its columns in order: rows that can be
    reordered (``take``) before they are sent."""
    if not table.num_rows:
        return pa.array([], pa.large_binary())
    count = table.num_columns.to_bytes(2, "big")
    parts: list[pa.Array] = []
    for number, column in enumerate(table.columns):
        parts += _field(column.combine_chunks(), count if number == 0 else b"")
    return pc.binary_join_element_wise(*parts, EMPTY)


def joined(rows: pa.LargeBinaryArray) -> pa.Buffer:
    """The rows' bytes, one after the other: COPY data (no header, no trailer)."""
    if not len(rows):
        return pa.py_buffer(b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    start, end = offsets[rows.offset], offsets[rows.offset + len(rows)]
    return rows.buffers()[2][start:end]
