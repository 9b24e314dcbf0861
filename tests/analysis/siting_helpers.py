"""Small hand-made siting instances, loaded into their own layers by the real loader."""

import dataclasses
import json
from pathlib import Path

import numpy as np
from pyproj import Transformer

from layers.catalogue import Catalogue
from layers.model import Layer
from layers.tables import ensure_layer_tables
from loaders.pipeline import load_layer

TO_LONLAT = Transformer.from_crs(27700, 4326, always_xy=True)
ORIGIN = (389_000.0, 390_000.0)  # central Stockport, British National Grid


def lonlat(x: float, y: float) -> list[float]:
    lon, lat = TO_LONLAT.transform(ORIGIN[0] + x, ORIGIN[1] + y)
    return [round(lon, 8), round(lat, 8)]


def _feature(geometry: dict, properties: dict) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def point_layer(layer_id: str, fields: list[dict] | None = None) -> Layer:
    return Layer.model_validate(
        {"id": layer_id, "title": layer_id, "theme": "Tests", "geometry": "Point",
         "fields": fields or [{"name": "name", "label": "Name"},
                              {"name": "weight", "type": "number", "label": "Weight"}],
         "attribution": "tests", "access": "staff"}
    )  # fmt: skip


def line_layer(layer_id: str) -> Layer:
    return Layer.model_validate(
        {"id": layer_id, "title": layer_id, "theme": "Tests", "geometry": "LineString",
         "fields": [{"name": "name", "label": "Name"}], "attribution": "tests",
         "access": "staff", "network": ["walking"]}
    )  # fmt: skip


def load(engine, tmp: Path, layer: Layer, features: list[dict]) -> None:
    path = tmp / f"{layer.id}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    ensure_layer_tables(engine, [layer])
    load_layer(engine, layer, path, reports_dir=tmp, run_by="tests")


def points(xy: np.ndarray, **columns) -> list[dict]:
    return [
        _feature(
            {"type": "Point", "coordinates": lonlat(float(x), float(y))},
            {name: (v.item() if hasattr(v, "item") else v) for name, v in
             ((n, values[k]) for n, values in columns.items())},
        )
        for k, (x, y) in enumerate(xy)
    ]  # fmt: skip


def lines(segments: list[tuple[tuple[float, float], tuple[float, float]]]) -> list[dict]:
    return [
        _feature({"type": "LineString", "coordinates": [lonlat(*a), lonlat(*b)]}, {"name": "path"})
        for a, b in segments
    ]


def with_layers(catalogue: Catalogue, *layers: Layer) -> Catalogue:
    """The catalogue plus test layers; a network layer replaces the catalogue's own."""
    existing = {
        k: (v.model_copy(update={"network": []}) if any(x.network for x in layers) else v)
        for k, v in catalogue.layers.items()
    }
    return dataclasses.replace(catalogue, layers={**existing, **{x.id: x for x in layers}})
