"""Binary COPY data built by loaders.pgbinary reads back as the same values in PostgreSQL,
and geometry WKB from loaders.wkb (reused or written anew, promoted) as the same shapes."""

import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pytest
import shapely
from sqlalchemy import text

from loaders import pgbinary
from loaders.wkb import wkb

UTC = dt.UTC


def encoded(table: pa.Table) -> pa.Buffer:
    """The COPY data of ``table``'s rows, as the pipeline sends them."""
    return pgbinary.joined(pgbinary.encode_rows(table))


def copy_rows(engine, columns: str, table: pa.Table, query: str) -> list[tuple]:
    """COPY ``table`` (in two chunks) into a temporary table; the rows ``query`` returns."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TEMP TABLE copied ({columns}) ON COMMIT DROP"))
        data = pgbinary.HEADER + b"".join(
            encoded(part).to_pybytes() for part in (table.slice(0, 1), table.slice(1))
        )
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.copy_expert(
                "COPY copied FROM STDIN WITH (FORMAT binary)",
                io.BytesIO(data + pgbinary.TRAILER),
            )
        conn.execute(text("SET LOCAL timezone = 'UTC'"))
        return [tuple(row) for row in conn.execute(text(query))]


def test_every_field_type_and_null_round_trips(engine):
    stamp = dt.datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)
    table = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": pa.array(["Mersey Way", None, 'quote " comma , tab \t é']),
        "count": pa.array([None, -5, 2**40], pa.int64()),
        "size": pa.array([1.5, None, -2.25]),
        "lit": pa.array([True, None, False]),
        "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1960, 1, 1)], pa.date32()),
        "at": pa.array([stamp, None, dt.datetime(2030, 1, 1, tzinfo=UTC)], pa.timestamp("us", UTC)),
    })  # fmt: skip
    rows = copy_rows(
        engine,
        "id bigint, name text, count bigint, size float8, lit boolean, day date, at timestamptz",
        table,
        "SELECT * FROM copied ORDER BY id",
    )
    assert rows == [
        (1, "Mersey Way", None, 1.5, True, dt.date(2024, 2, 29), stamp),
        (2, None, -5, None, None, None, None),
        (3, 'quote " comma , tab \t é', 2**40, -2.25, False, dt.date(1960, 1, 1),
         dt.datetime(2030, 1, 1, tzinfo=UTC)),
    ]  # fmt: skip


def test_no_rows_is_no_data():
    assert encoded(pa.table({"id": pa.array([], pa.int64())})).size == 0


@pytest.mark.parametrize("promote", [False, True])
def test_geometries_reused_written_and_promoted(engine, promote):
    square, ring = shapely.box(0, 0, 1, 1), shapely.Point(5, 5).buffer(1, 4)
    multi = shapely.MultiPolygon([shapely.box(2, 2, 3, 3), shapely.box(4, 4, 5, 5)])
    geoms = np.array([square, ring, multi, shapely.box(7, 7, 8, 8)], dtype=object)
    source = pa.array(
        [shapely.to_wkb(g, byte_order=1) for g in geoms[:2]]
        + [shapely.to_wkb(multi, byte_order=0)]  # big-endian: written anew
        + [shapely.to_wkb(shapely.box(0, 0, 9, 9), byte_order=1)],  # changed: written anew
        pa.binary(),
    )
    unchanged = np.array([True, True, True, False])
    encoded = wkb(geoms, source, unchanged, promote)
    kind = "MultiPolygon" if promote else "Geometry"
    rows = copy_rows(
        engine,
        f"id bigint, geom geometry({kind}, 27700)",
        pa.table({"id": pa.array(range(4), pa.int64()), "geom": encoded}),
        "SELECT ST_SRID(geom), ST_AsBinary(geom) FROM copied ORDER BY id",
    )
    assert [srid for srid, _ in rows] == [27700] * 4
    back = [shapely.from_wkb(bytes(b)) for _, b in rows]
    expected = [
        shapely.MultiPolygon([g]) if promote and g.geom_type == "Polygon" else g for g in geoms
    ]
    assert all(shapely.equals_exact(a, b) for a, b in zip(back, expected, strict=True))


def test_points_are_records_and_three_d_sources_lose_z(engine):
    points = shapely.points([[1.0, 2.0], [3.5, -4.25]])
    encoded = wkb(points, None, np.ones(2, bool), True)
    rows = copy_rows(
        engine, "id bigint, geom geometry(MultiPoint, 27700)",
        pa.table({"id": pa.array([1, 2], pa.int64()), "geom": encoded}),
        "SELECT ST_AsText(geom) FROM copied ORDER BY id",
    )  # fmt: skip
    assert rows == [("MULTIPOINT((1 2))",), ("MULTIPOINT((3.5 -4.25))",)]
    line = shapely.LineString([(0, 0, 5), (1, 1, 6)])
    source = pa.array([shapely.to_wkb(line, output_dimension=3)], pa.binary())
    flat = wkb(np.array([shapely.force_2d(line)]), source, np.array([True]), False)
    assert shapely.from_wkb(flat[0].as_py()).has_z is False
