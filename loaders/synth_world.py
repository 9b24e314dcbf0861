"""What the synthetic layers are made from: a council's real boundary, density areas, rivers
and host sites (all named by its catalogue), seeded random streams, and invented names."""

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from layers.catalogue import Catalogue
from layers.model import SyntheticInputs
from loaders.samples import source_path
from mapserver.errors import ServiceError

# The day the synthetic records are "as of": fixed, so that files never depend on the clock.
AS_OF = np.datetime64("2026-11-26", "D")
# Features stay this far inside the boundary, so rounded coordinates (1 cm in CRS84 files)
# never fall outside it.
INSET_M = 1.0

STREET_STEMS = (
    "Abbey Albert Alexandra Ash Beech Birch Bridge Broad Brook Cedar Chapel Chestnut Church "
    "Clover Cromwell Cross Derby Elm Farm Fern Field Foxglove George Gladstone Grange Green "
    "Hall Hawthorn Heath Heather High Hill Holly Kings Lancaster Laurel Lavender Lodge Long "
    "Manor Maple Market Meadow Mill Moor Nelson New North Oak Old Orchard Park Primrose "
    "Princess Queens River Rowan School South Spring Stanley Station Vale Victoria Warwick "
    "Well Wellington Willow Windsor Wood York"
).split()
STREET_KINDS = (
    "Road Road Road Street Street Lane Lane Avenue Close Drive Grove Way Crescent Place "
    "Terrace Gardens Walk Rise View Court Mews"
).split()
PLACE_HEADS = (
    "Ash Oak Elm Brook Mill High Holly Thorn Moss Brad Hazel Marsh Stone Heath Fern Wood "
    "Cliff Fair Red Green Lark Swan Kings Castle Bent Cold Dun Hart Lyn Nor"
).split()
PLACE_TAILS = "field ley ton wood bury ford dale hurst bank gate side worth well croft wick".split()


def street_names(rng: np.random.Generator, n: int) -> np.ndarray:
    stems = rng.choice(STREET_STEMS, n)
    kinds = rng.choice(STREET_KINDS, n)
    return np.char.add(np.char.add(stems, " "), kinds).astype(object)


def place_names(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct invented place names while they last, then repeats."""
    pool = [head + tail for head in PLACE_HEADS for tail in PLACE_TAILS]
    picks = rng.choice(len(pool), n, replace=n > len(pool))
    return [pool[i] for i in picks]


def iso_dates(dates: np.ndarray) -> np.ndarray:
    """datetime64 days as ISO text (None for NaT): every file format keeps them as written."""
    text = np.datetime_as_string(dates.astype("datetime64[D]"), unit="D").astype(object)
    text[np.isnat(dates)] = None
    return text


def days_before(rng: np.random.Generator, n: int, earliest: int, latest: int = 0) -> np.ndarray:
    """Uniform random days between `earliest` and `latest` days before AS_OF."""
    return AS_OF - rng.integers(latest, earliest + 1, n).astype("timedelta64[D]")


def sample_points(
    polygons: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`counts[i]` uniform random points inside each of `polygons` (by rejection in its
    bounding box): an (n, 2) array and the polygon index of each point."""
    chunks, owners = [], []
    for i in np.flatnonzero(counts):
        polygon = polygons[i]
        x0, y0, x1, y1 = shapely.bounds(polygon)
        fill = shapely.area(polygon) / ((x1 - x0) * (y1 - y0))
        need = int(counts[i])
        while need:
            tries = rng.uniform((x0, y0), (x1, y1), size=(int(need / fill * 1.2) + 8, 2))
            kept = tries[shapely.contains_xy(polygon, tries[:, 0], tries[:, 1])][:need]
            chunks.append(kept)
            owners.append(np.full(len(kept), i))
            need -= len(kept)
    if not chunks:
        return np.empty((0, 2)), np.empty(0, dtype=int)
    return np.concatenate(chunks), np.concatenate(owners)


def frame(columns: dict[str, Any], geometry: np.ndarray, crs: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=crs)


@dataclass
class World:
    """The real inputs of one council, read lazily, plus anything several layers share."""

    catalogue: Catalogue
    scale: float
    seed: int
    _shared: dict[str, Any] = field(default_factory=dict)

    def rng(self, purpose: str) -> np.random.Generator:
        # One stream per purpose: a layer's file does not depend on which others are made.
        return np.random.default_rng([self.seed, zlib.crc32(purpose.encode())])

    def count(self, base: int) -> int:
        return max(1, round(base * self.scale))

    def shared[T](self, key: str, make: Callable[["World"], T]) -> T:
        """What several layers are built on (the invented streets), made once per run."""
        if key not in self._shared:
            self._shared[key] = make(self)
        return self._shared[key]

    @property
    def crs(self) -> str:
        return self.catalogue.council.crs

    @cached_property
    def inputs(self) -> SyntheticInputs:
        inputs = self.catalogue.council.synthetic
        if inputs is None:
            raise ServiceError(
                f"The council profile of {self.catalogue.council.name} has no `synthetic:` "
                "inputs (density_layer, watercourse_layer, host_site_layers)."
            )
        return inputs

    def read(self, layer_id: str) -> gpd.GeoDataFrame:
        """A real input layer from its source file, in the council's CRS."""
        source = self.catalogue.layer(layer_id).source
        path = source_path(source.path) if source and source.path else None
        if not isinstance(path, Path) or not path.is_file():
            raise ServiceError(f"Layer {layer_id} has no source file to build synthetic data on.")
        try:
            features = pyogrio.read_dataframe(path, layer=source.layer, encoding=source.encoding)
        except (DataSourceError, DataLayerError) as exc:
            raise ServiceError(f"Cannot read {path.name}: {exc}") from None
        if features.crs is None:
            features = features.set_crs(source.crs or "EPSG:4326")
        return features.to_crs(self.crs)

    @cached_property
    def boundary(self) -> shapely.Geometry:
        boundary = shapely.union_all(self.read(self.catalogue.council.boundary_layer).geometry)
        shapely.prepare(boundary)
        return boundary

    @cached_property
    def inner(self) -> shapely.Geometry:
        inner = shapely.buffer(self.boundary, -INSET_M)
        shapely.prepare(inner)
        return inner

    @cached_property
    def ring(self) -> shapely.Geometry:
        """The boundary line: what a polygon crosses when it needs clipping."""
        ring = shapely.boundary(self.boundary)
        shapely.prepare(ring)
        return ring

    def inside(self, xy: np.ndarray) -> np.ndarray:
        return shapely.contains_xy(self.inner, xy[:, 0], xy[:, 1])

    @cached_property
    def areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Density areas cut to the borough, and each one's share of the population: areas
        hold similar populations, so each gets an equal share (density ∝ 1/area), less the
        part of it outside the boundary."""
        polygons = self.read(self.inputs.density_layer).geometry.to_numpy()
        pieces = shapely.intersection(polygons, self.inner)
        keep = shapely.area(pieces) > 0
        share = shapely.area(pieces[keep]) / shapely.area(polygons[keep])
        shapely.prepare(pieces)
        return pieces[keep], share / share.sum()

    def points(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`n` points spread like the population: (n, 2) coordinates and each one's area."""
        polygons, share = self.areas
        xy, owner = sample_points(polygons, rng.multinomial(n, share), rng)
        order = rng.permutation(len(xy))  # not grouped by area
        return xy[order], owner[order]

    @cached_property
    def watercourses(self) -> np.ndarray:
        lines = self.read(self.inputs.watercourse_layer).geometry.to_numpy()
        return shapely.get_parts(lines[shapely.get_dimensions(lines) == 1])

    @cached_property
    def hosts(self) -> gpd.GeoDataFrame:
        """Sites inside the borough that may host a defibrillator: name, address, site_type."""
        parts = [self._host_sites(layer_id) for layer_id in self.inputs.host_site_layers]
        hosts = gpd.GeoDataFrame(
            pd.concat(parts, ignore_index=True), geometry="geometry", crs=self.crs
        )
        xy = shapely.get_coordinates(hosts.geometry.to_numpy())
        return hosts[self.inside(xy)].reset_index(drop=True)

    def _host_sites(self, layer_id: str) -> gpd.GeoDataFrame:
        layer = self.catalogue.layer(layer_id)
        sites = self.read(layer_id)
        sites = sites[sites.geom_type == "Point"]
        columns = {f.name: f.source_name for f in layer.fields}
        kind = _singular(layer.title)

        def column(name: str, default: str) -> list[str]:
            if name not in columns:
                return [default] * len(sites)
            return [str(v) if pd.notna(v) else default for v in sites[columns[name]]]

        return gpd.GeoDataFrame(
            {
                "name": column("name", kind),
                "address": column("address", ""),
                "site_type": kind,
                "geometry": sites.geometry.to_numpy(),
            }
        )


def _singular(title: str) -> str:
    """Libraries → Library, Polling stations → Polling station: a host layer's site type."""
    if title.endswith("ies"):
        return title[:-3] + "y"
    return title[:-1] if title.endswith("s") else title
