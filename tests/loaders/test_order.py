"""Rows are stored along a Hilbert curve: neighbours on the same pages."""

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pytest
import shapely

from layers.tables import ensure_layer_tables
from loaders import order, read
from loaders.order import Declared, Encoded, _hilbert, centres, hilbert_keys, spatially_ordered
from loaders.pipeline import load_layer


def reference(order: int, x: int, y: int) -> int:
    """The textbook xy-to-distance walk, one point at a time."""
    side, distance, step = 1 << order, 0, 1 << (order - 1)
    while step:
        rx, ry = int(x & step > 0), int(y & step > 0)
        distance += step * step * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = side - 1 - x, side - 1 - y
            x, y = y, x
        step >>= 1
    return distance


def test_hilbert_distance_matches_the_textbook_walk():
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 1 << 16, 500), rng.integers(0, 1 << 16, 500)
    assert _hilbert(x, y, 16).tolist() == [reference(16, a, b) for a, b in zip(x, y, strict=True)]
    grid = np.indices((4, 4)).reshape(2, -1)
    assert sorted(_hilbert(grid[0], grid[1], 2).tolist()) == list(range(16))


def test_missing_geometries_sort_last_and_rows_keep_their_numbers():
    geoms = np.array([shapely.Point(9, 9), None, shapely.Point(0, 0), shapely.Point(0, 1)])
    keys = hilbert_keys(geoms)
    assert keys.argmax() == 1
    rows = pa.array([b"row 1", b"row 3", b"row 4"], pa.large_binary())  # 2 was rejected
    (ordered,) = spatially_ordered(iter([Encoded(rows, centres(geoms[[0, 2, 3]]))]))
    assert ordered.to_pylist() == [b"row 3", b"row 4", b"row 1"]


def test_a_loaded_layer_is_stored_in_spatial_order(runtime, scalar, tmp_path):
    """A shuffled grid of points comes out with physical neighbours close on the ground."""
    # A layer of its own: the real one stays as the later tests count it.
    real = runtime.catalogue.layer("greenspace_access_points")
    layer = real.model_copy(update={"id": "order_test", "table": None, "source": None,
                                    "sample": False, "gazetteer": None})  # fmt: skip
    ensure_layer_tables(runtime.engine, [layer])
    rng = np.random.default_rng(3)
    cells = rng.permutation(60 * 60)
    path = tmp_path / "grid.csv"
    lines = [
        f"Pedestrian,{-2.20 + (c % 60) * 2e-4:.6f},{53.40 + (c // 60) * 2e-4:.6f}" for c in cells
    ]
    path.write_text("access_type,lon,lat\n" + "\n".join(lines) + "\n")
    load_layer(runtime.engine, layer, path, reports_dir=tmp_path, run_by="test",
               catalogue=runtime.catalogue)  # fmt: skip
    table = f"layers.{layer.table_name}"
    step = scalar(
        f"SELECT avg(d) FROM (SELECT ST_Distance(geom, lag(geom) OVER (ORDER BY ctid)) AS d"
        f" FROM {table}) s"
    )
    by_fid = scalar(
        f"SELECT avg(d) FROM (SELECT ST_Distance(geom, lag(geom) OVER (ORDER BY fid)) AS d"
        f" FROM {table}) s"
    )
    assert step < 30 < by_fid  # a cell is ~13 m by ~22 m; source order jumps km


def grid_batches(cells: np.ndarray, side: int, per_batch: int) -> list[Encoded]:
    """Points on a ``side`` x ``side`` grid, one per cell in ``cells`` order, in batches;
    each row's bytes are its cell number."""
    xy = np.stack([cells % side, cells // side], axis=1).astype(float)
    rows = pa.array([int(c).to_bytes(4, "big") for c in cells], pa.large_binary())
    return [
        Encoded(rows[start : start + per_batch], xy[start : start + per_batch])
        for start in range(0, len(cells), per_batch)
    ]


def test_a_source_in_spatial_order_is_sent_a_window_at_a_time(monkeypatch):
    """Row by row of a grid: each window of 100 rows lies in a strip of the extent, so
    it is sorted and sent on its own; shuffled, the rows are sorted whole."""
    monkeypatch.setattr(order, "STREAM_ROWS", 100)
    side = 40
    declared = Declared((0.0, 0.0, side - 1.0, side - 1.0), side * side)
    windows: list[int] = []
    sent = spatially_ordered(
        iter(grid_batches(np.arange(side * side), side, 50)), lambda: declared, windows
    )
    cells = [int.from_bytes(b, "big") for rows in sent for b in rows.to_pylist()]
    assert windows == [100] * 16 and sorted(cells) == list(range(side * side))
    # Each window's rows are its own: strips of 2.5 grid rows, in Hilbert order within.
    assert all(max(cells[i : i + 100]) - min(cells[i : i + 100]) < 100 for i in range(0, 1600, 100))

    shuffled = np.random.default_rng(5).permutation(side * side)
    windows = []
    sent = spatially_ordered(iter(grid_batches(shuffled, side, 50)), lambda: declared, windows)
    assert sum(len(rows) for rows in sent) == side * side and windows == [side * side]
    # Undeclared (a CSV), rows are sorted whole however they come.
    windows = []
    list(spatially_ordered(iter(grid_batches(np.arange(side * side), side, 50)), windows=windows))
    assert windows == [side * side]


@pytest.mark.parametrize(
    ("box", "rows", "compact"),
    [
        ((0, 0, 10, 2), 20, True),  # a fifth of the rows in a fifth of the extent
        ((0, 0, 10, 5), 20, False),  # ... spread over half of it
        ((0, 0, 10, 5), 60, True),  # 60%: allowed half of the extent at most
        ((0, 0, 10, 6), 60, False),
        ((0, 0, np.inf, 6), 60, False),  # no box yet (every geometry missing)
    ],
)
def test_a_window_is_compact_within_twice_its_share_and_half_the_extent(box, rows, compact):
    declared = Declared((0.0, 0.0, 10.0, 10.0), 100)
    assert declared.holds_compactly(rows, np.array(box, dtype=float)) is compact


def test_a_layer_from_a_gridded_geopackage_is_stored_in_windows(
    runtime, scalar, tmp_path, monkeypatch
):
    """The same grid as above, in a GeoPackage (which declares its extent): row by row of
    the grid it is loaded in windows, shuffled sorted whole; both stored in spatial order."""
    monkeypatch.setattr(order, "STREAM_ROWS", 600)
    monkeypatch.setattr(read, "BATCH_ROWS", 300)
    real = runtime.catalogue.layer("greenspace_access_points")
    layer = real.model_copy(update={"id": "order_test", "table": None, "source": None,
                                    "sample": False, "gazetteer": None})  # fmt: skip
    ensure_layer_tables(runtime.engine, [layer])
    table = f"layers.{layer.table_name}"
    for cells, windows in [(np.arange(3600), 6), (np.random.default_rng(3).permutation(3600), 1)]:
        path = tmp_path / f"grid-{windows}.gpkg"
        lon, lat = -2.20 + (cells % 60) * 2e-4, 53.40 + (cells // 60) * 2e-4
        gpd.GeoDataFrame(
            {"access_type": ["Pedestrian"] * len(cells)},
            geometry=gpd.points_from_xy(lon, lat),
            crs="EPSG:4326",
        ).to_file(path, driver="GPKG")
        result = load_layer(runtime.engine, layer, path, reports_dir=tmp_path, run_by="test",
                            catalogue=runtime.catalogue)  # fmt: skip
        details = scalar(
            "SELECT details FROM app.layer_versions WHERE layer = :l AND version = :v",
            l=layer.id, v=result.version,
        )  # fmt: skip
        assert details["sorted_windows"] == windows
        step = scalar(
            f"SELECT avg(d) FROM (SELECT ST_Distance(geom, lag(geom) OVER (ORDER BY ctid))"
            f" AS d FROM {table}) s"
        )
        assert step < 30  # a cell is ~13 m by ~22 m
