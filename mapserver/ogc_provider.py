"""Our pygeoapi feature provider: pygeoapi's PostgreSQL provider with an exact CRS84 bbox.

pygeoapi 0.24 turns a lon/lat ``bbox`` into the storage CRS by transforming its two
corners, so in EPSG:27700 it queries a rectangle that is not the requested area and
misses or adds features near its edges. We keep pygeoapi's request handling but hand the
provider the requested lon/lat box as well: it filters with a densified enclosing
rectangle (index-assisted) and then exactly in lon/lat.
"""

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from geoalchemy2.functions import ST_Intersects, ST_MakeEnvelope, ST_Transform
from pygeoapi.api import itemtypes
from pygeoapi.crs import get_crs
from pygeoapi.provider.sql import PostgreSQLProvider, get_srid
from pyproj import CRS, Transformer
from sqlalchemy import and_

LONLAT = CRS.from_epsg(4326)


class RequestedBBox(list):
    """A bbox in the storage CRS that remembers the lon/lat box it was made from."""

    lonlat: tuple[float, float, float, float]


@lru_cache(maxsize=16)
def _to_storage(storage: CRS) -> Transformer:
    return Transformer.from_crs(LONLAT, storage, always_xy=True)


def _is_lonlat(crs: CRS) -> bool:
    return crs.equals(LONLAT, ignore_axis_order=True) and crs.is_geographic


def exact_transform_bbox(original: Callable[..., list]) -> Callable[..., list]:
    def transform_bbox(bbox: list, from_crs: Any, to_crs: Any, always_xy: bool = False) -> list:
        source, target = get_crs(from_crs), get_crs(to_crs)
        if len(bbox) == 6:  # heights: a 2D layer ignores them
            bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
        # Only the default bbox-crs (CRS84, x = longitude) is handled here.
        if len(bbox) != 4 or not _is_lonlat(source) or source.axis_info[0].direction != "east":
            return original(bbox, from_crs, to_crs, always_xy)
        enclosing = RequestedBBox(_to_storage(target).transform_bounds(*bbox, densify_pts=21))
        enclosing.lonlat = (bbox[0], bbox[1], bbox[2], bbox[3])
        return enclosing

    return transform_bbox


def install() -> None:
    """Route pygeoapi's bbox transform through ours (idempotent)."""
    if not getattr(itemtypes.transform_bbox, "exact", False):
        patched = exact_transform_bbox(itemtypes.transform_bbox)
        patched.exact = True  # type: ignore[attr-defined]
        itemtypes.transform_bbox = patched


class CouncilPostgreSQLProvider(PostgreSQLProvider):
    def _get_bbox_filter(self, bbox: list[float]) -> Any:
        lonlat = getattr(bbox, "lonlat", None)
        if lonlat is None:
            flat = [bbox[0], bbox[1], bbox[3], bbox[4]] if len(bbox) == 6 else bbox
            return super()._get_bbox_filter(flat)
        geom = getattr(self.table_model, self.geom)
        enclosing = ST_MakeEnvelope(*bbox, get_srid(self.storage_crs))
        return and_(
            ST_Intersects(enclosing, geom),
            ST_Intersects(ST_MakeEnvelope(*lonlat, 4326), ST_Transform(geom, 4326)),
        )
