"""Rows are stored along a Hilbert curve: neighbours on the same pages."""

import numpy as np
import shapely

from layers.tables import ensure_layer_tables
from loaders.order import Encoded, _hilbert, centres, hilbert_keys, spatially_ordered
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
    import pyarrow as pa

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
