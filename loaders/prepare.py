"""Turning a source frame into the rows of a layer's table: fields mapped and typed,
geometry reprojected, promoted to the layer's type and repaired; bad rows rejected with
a reason."""

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.model import Layer, LayerField
from mapserver.errors import ServiceError

MULTI = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}


@dataclass
class Reject:
    row: int  # 1-based row number in the source
    field: str
    value: str
    reason: str


@dataclass
class Prepared:
    frame: pd.DataFrame  # id, fields..., geom (hex EWKB), in table column order
    rows_read: int
    repaired: int = 0
    rejects: list[Reject] = field(default_factory=list)


def _coerce(values: pd.Series, spec: LayerField) -> tuple[pd.Series, pd.Series]:
    """Typed values and a mask of rows whose non-empty value did not fit the type."""
    present = values.notna() & (values.astype(str).str.strip() != "")
    if spec.type == "string":
        return values.where(present).astype(object).map(
            lambda v: v if v is None or isinstance(v, str) else str(v), na_action="ignore"
        ), pd.Series(False, index=values.index)
    if spec.type in ("integer", "number"):
        numbers = pd.to_numeric(values.where(present), errors="coerce")
        bad = present & numbers.isna()
        if spec.type == "integer":
            bad |= present & numbers.notna() & (numbers != np.floor(numbers))
            numbers = numbers.where(~bad).astype("Int64")
        return numbers, bad
    if spec.type == "boolean":
        text = values.where(present).astype(str).str.strip().str.lower()
        typed = text.map(lambda v: True if v in TRUE else False if v in FALSE else None)
        return typed, present & typed.isna()
    parsed = pd.to_datetime(values.where(present), errors="coerce", utc=spec.type == "datetime")
    bad = present & parsed.isna()
    if spec.type == "date":
        parsed = parsed.dt.date
    return parsed, bad


def _geometries(frame: gpd.GeoDataFrame, layer: Layer) -> tuple[np.ndarray, pd.Series, int]:
    """Geometries in the layer's CRS and type, the reason each bad one is refused, repairs."""
    geoms = frame.geometry.to_crs(epsg=layer.srid).values.to_numpy() if len(frame) else np.array([])
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    reasons[missing] = "no geometry"
    single = MULTI.get(layer.geometry, layer.geometry)
    types = np.array(shapely.get_type_id(geoms))
    wanted = {
        "Point": {0, 4},
        "LineString": {1, 5},
        "Polygon": {3, 6},
    }[single]
    wrong = ~missing & ~np.isin(types, list(wanted))
    for index in np.flatnonzero(wrong):
        reasons.iloc[index] = f"{_type_name(types[index])} in a {layer.geometry} layer"
    ok = ~missing & ~wrong
    invalid = ok & ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        fixed = shapely.make_valid(geoms[invalid])
        # make_valid may return a collection; keep the parts of the layer's dimension.
        dimension = {"Point": 0, "LineString": 1, "Polygon": 2}[single]
        fixed = np.array([_parts_of_dimension(g, dimension) for g in fixed], dtype=object)
        geoms[invalid] = fixed
        emptied = np.zeros_like(ok)
        emptied[invalid] = shapely.is_empty(fixed)
        reasons[emptied] = "geometry could not be repaired"
        ok &= ~emptied
    if layer.geometry in MULTI:
        singles = ok & np.isin(shapely.get_type_id(geoms), [0, 1, 3])
        geoms[singles] = [_as_multi(g) for g in geoms[singles]]
    return geoms, reasons, repaired


def _type_name(type_id: int) -> str:
    return [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ][type_id]


def _parts_of_dimension(geom: shapely.Geometry, dimension: int) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dimension]
    return shapely.union_all(parts) if parts else shapely.Point()


def _as_multi(geom: shapely.Geometry) -> shapely.Geometry:
    return {
        "Point": shapely.MultiPoint,
        "LineString": shapely.MultiLineString,
        "Polygon": shapely.MultiPolygon,
    }[geom.geom_type]([geom])


def prepare(frame: gpd.GeoDataFrame, layer: Layer) -> Prepared:
    missing = [f.source_name for f in layer.fields if f.source_name not in frame.columns]
    if missing:
        available = ", ".join(c for c in frame.columns if c != frame.geometry.name)
        raise ServiceError(
            f"The source has no column {', '.join(missing)} for layer {layer.id}.",
            hint=f"Its columns are: {available}. Map them with `source:` in the catalogue.",
        )
    prepared = Prepared(frame=pd.DataFrame(), rows_read=len(frame))
    rejected = pd.Series(False, index=frame.index)
    out = pd.DataFrame(index=frame.index)
    out[layer.id_field] = np.arange(1, len(frame) + 1, dtype=np.int64)
    for spec in layer.fields:
        typed, bad = _coerce(frame[spec.source_name], spec)
        out[spec.name] = typed
        for index in np.flatnonzero(bad.to_numpy()):
            prepared.rejects.append(
                Reject(
                    index + 1,
                    spec.source_name,
                    str(frame[spec.source_name].iloc[index]),
                    f"not a valid {spec.type}",
                )
            )
        rejected |= bad
    geoms, reasons, prepared.repaired = _geometries(frame, layer)
    for index in np.flatnonzero(reasons.notna().to_numpy()):
        prepared.rejects.append(Reject(index + 1, "geometry", "", reasons.iloc[index]))
    rejected |= reasons.notna()
    keep = ~rejected.to_numpy()
    geoms = shapely.set_srid(geoms[keep], layer.srid)
    out = out[keep].copy()
    out["geom"] = shapely.to_wkb(geoms, hex=True, include_srid=True)
    prepared.frame = out
    prepared.rejects.sort(key=lambda r: r.row)
    return prepared
