"""The tile matrix sets we serve vector tiles in, and where a tile falls in a layer's CRS.

Two sets, built with ``morecantile`` (OGC 2D Tile Matrix Set 2.0):

- ``WebMercatorQuad``: the web's usual grid (EPSG:3857), what Leaflet and most clients use.
- ``OSGB36BritishNationalGrid``: Ordnance Survey's ZXY grid on British National Grid
  (EPSG:27700), as the OS Maps and Vector Tile APIs use it: origin (-238375, 1376256) at
  the top left, 256 px tiles, 896 m a pixel at level 0 (5 × 6 tiles) halving at each
  level down to level 13 (0.109375 m a pixel). Not in the OGC register, so it has no URI.

A tile's statement needs the tile grown by the MVT buffer in the layer's CRS (for the
index), the size of a pixel there (for generalisation) and, when the tile's CRS is not
the layer's, how to reproject: an affine map fitted to the tile when it stays within
``MAX_AFFINE_ERROR_PX`` of the exact transformation (GDAL's approximate transformer idea:
0.02 px off at zoom 14 around Stockport, 0.08 px at zoom 12), else ``ST_Transform``.
``ST_Transform`` costs about 1 µs a vertex, most of a dense tile's time.
"""

from dataclasses import dataclass
from functools import cache, lru_cache

import morecantile
import numpy as np
import pyproj

from mapserver.tiles_sql import BUFFER, EXTENT

EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"
# GDAL's default error threshold for its approximate transformer is 0.125 px; 0 turns the
# affine map off (always ST_Transform).
MAX_AFFINE_ERROR_PX = 0.125
AFFINE_GRID = 9  # points a side of the grid the affine map is fitted and checked on

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


@dataclass(frozen=True)
class MatrixSet:
    tms: morecantile.TileMatrixSet
    srid: int

    @property
    def id(self) -> str:
        return str(self.tms.id)

    @property
    def crs_uri(self) -> str:
        return f"{EPSG_URI}{self.srid}"

    @property
    def web_mercator(self) -> bool:
        return self.id == "WebMercatorQuad"

    def outside(self, z: int, x: int, y: int) -> str | None:
        """Why tile ``z/y/x`` is not in this matrix set, or None when it is."""
        if not self.tms.minzoom <= z <= self.tms.maxzoom:
            return f"tileMatrix {z} is not in {self.id} ({self.tms.minzoom}-{self.tms.maxzoom})."
        matrix = self.tms.matrix(z)
        if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
            return f"Tile {z}/{y}/{x} is outside {self.id} tile matrix {z}."
        return None


BRITISH_NATIONAL_GRID = morecantile.TileMatrixSet.custom(
    # Right and bottom edges chosen for 5 × 6 tiles of 256 px at 896 m a pixel at level 0.
    [-238375.0, 1376256.0 - 6 * 256 * 896.0, -238375.0 + 5 * 256 * 896.0, 1376256.0],
    pyproj.CRS.from_epsg(27700),
    matrix_scale=[5, 6],
    minzoom=0,
    maxzoom=13,
    id="OSGB36BritishNationalGrid",
    title="British National Grid (Ordnance Survey ZXY tiling)",
    description="Ordnance Survey's ZXY tile grid on British National Grid (EPSG:27700): "
    "origin (-238375, 1376256), 256 px tiles, 896 m a pixel at level 0, halving per level.",
    orderedAxes=["E", "N"],
)

MATRIX_SETS: dict[str, MatrixSet] = {
    m.id: m
    for m in (
        MatrixSet(morecantile.tms.get("WebMercatorQuad"), 3857),
        MatrixSet(BRITISH_NATIONAL_GRID, 27700),
    )
}


@cache
def _transformer(source: int, target: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


@cache
def _area_of_use(srid: int) -> Bounds:
    area = pyproj.CRS.from_epsg(srid).area_of_use
    return area.bounds if area else (-180.0, -90.0, 180.0, 90.0)


def bounds_in(bounds: Bounds, source: int, target: int) -> Bounds | None:
    """A box in CRS ``source`` as a box in ``target`` covering it (edges densified), cut
    to where ``target`` is defined; None when they do not overlap."""
    if source == target:
        return bounds
    west, south, east, north = _transformer(source, 4326).transform_bounds(*bounds, densify_pts=21)
    a_west, a_south, a_east, a_north = _area_of_use(target)
    west, south = max(west, a_west), max(south, a_south)
    east, north = min(east, a_east), min(north, a_north)
    if west >= east or south >= north:
        return None
    return _transformer(4326, target).transform_bounds(west, south, east, north, densify_pts=21)


def affine_fit(
    bounds: Bounds, source: int, target: int, tolerance: float
) -> tuple[tuple[float, ...], Bounds] | None:
    """``ST_Affine``'s ``a, b, d, e, xoff, yoff`` mapping CRS ``target`` to CRS ``source``
    over ``bounds`` (in ``source``), fitted by least squares on a grid, and the box of the
    grid in ``target`` (the map being affine, its corners bound it); None when a grid
    point misses by more than ``tolerance`` (in ``source`` units)."""
    steps = np.linspace(0.0, 1.0, AFFINE_GRID)
    xs, ys = np.meshgrid(
        bounds[0] + steps * (bounds[2] - bounds[0]), bounds[1] + steps * (bounds[3] - bounds[1])
    )
    xs, ys = xs.ravel(), ys.ravel()
    es, ns = (np.asarray(v) for v in _transformer(source, target).transform(xs, ys))
    if not (np.isfinite(es).all() and np.isfinite(ns).all()):
        return None
    e0, n0 = float(es.mean()), float(ns.mean())  # centred, for a well-conditioned fit
    design = np.column_stack([es - e0, ns - n0, np.ones_like(es)])
    (a, b, c), *_ = np.linalg.lstsq(design, xs, rcond=None)
    (d, e, f), *_ = np.linalg.lstsq(design, ys, rcond=None)
    miss = np.hypot(design @ (a, b, c) - xs, design @ (d, e, f) - ys).max()
    if not miss <= tolerance:
        return None
    coefficients = (a, b, d, e, c - a * e0 - b * n0, f - d * e0 - e * n0)
    image = (float(es.min()), float(ns.min()), float(es.max()), float(ns.max()))
    return tuple(float(v) for v in coefficients), image


@dataclass(frozen=True)
class TileGeometry:
    """What a tile's statement needs to know of the tile, for one layer CRS."""

    box: Bounds  # the tile, in its matrix set's CRS
    candidates: Bounds  # the tile grown by the MVT buffer, in the layer's CRS
    pixel: float  # one pixel at the tile's zoom, in the layer's units (roughly)
    affine: tuple[float, ...] | None  # layer CRS -> tile CRS, when close enough


@lru_cache(maxsize=4096)  # the same tiles are asked for every layer shown (~2 ms each)
def tile_geometry(tms_id: str, tile: morecantile.Tile, srid: int) -> TileGeometry | None:
    """None when the tile is outside the area where CRS ``srid`` is defined."""
    tms = MATRIX_SETS[tms_id]
    xy = tms.tms.xy_bounds(tile)
    grow = (xy.right - xy.left) * BUFFER / EXTENT
    grown = (xy.left - grow, xy.bottom - grow, xy.right + grow, xy.top + grow)
    matrix = tms.tms.matrix(tile.z)
    fitted = None
    if tms.srid != srid and MAX_AFFINE_ERROR_PX > 0:
        fitted = affine_fit(grown, tms.srid, srid, MAX_AFFINE_ERROR_PX * matrix.cellSize)
    # An affine fit gives the box in the layer's CRS as well, without densified edges.
    candidates = fitted[1] if fitted else bounds_in(grown, tms.srid, srid)
    if candidates is None:
        return None
    pixel = (candidates[2] - candidates[0]) / (matrix.tileWidth * (1 + 2 * BUFFER / EXTENT))
    if fitted:  # a pixel more: the fit may be a fraction of one off
        candidates = (
            candidates[0] - pixel,
            candidates[1] - pixel,
            candidates[2] + pixel,
            candidates[3] + pixel,
        )
    affine = fitted[0] if fitted else None
    return TileGeometry((xy.left, xy.bottom, xy.right, xy.top), candidates, pixel, affine)
