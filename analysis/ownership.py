"""Ownership: for a parcel (a point on it), a drawn area or an address, who owns what —
the land parcels there with their title numbers, tenure and proprietor category (and the
proprietor's name for staff: a restricted field, shown per the caller's role) — and the
council's own land nearby.

The parcel layer is the council profile's ``parcel_layer``; the council's land is the layer
derived from it (``derived_from``), so both follow the catalogue.
"""

from collections import Counter
from typing import Any

from sqlalchemy.engine import Engine

from analysis.near import MAX_FEATURES_PER_LAYER, InputError
from analysis.sections import Progress, features_within, no_progress, section
from analysis.sites import parse_distance, resolve_area_site
from layers.catalogue import Catalogue
from layers.model import Layer
from mapserver.access import Principal

MAX_NEARBY_M = 2_000
DEFAULT_NEARBY_M = 250


def ownership_layers(catalogue: Catalogue, who: Principal) -> tuple[Layer, Layer | None]:
    parcels = catalogue.layers.get(catalogue.council.parcel_layer or "")
    if parcels is None or not who.can_read(parcels):
        raise InputError("no land parcel layer is configured for ownership")
    council = next(
        (
            layer
            for layer in catalogue.layers.values()
            if layer.derived_from and layer.derived_from.layer == parcels.id
            and who.can_read(layer)
        ),
        None,
    )  # fmt: skip
    return parcels, council


def check(engine: Engine, catalogue: Catalogue, who: Principal, data: dict[str, Any]) -> None:
    ownership_layers(catalogue, who)
    parse_distance(data.get("nearby", DEFAULT_NEARBY_M), "nearby", 0, MAX_NEARBY_M)
    with engine.connect() as conn:
        resolve_area_site(conn, catalogue, who, data)


def _summary(features: list[dict], field: str) -> list[dict[str, Any]]:
    counts = Counter(f["properties"].get(field) for f in features)
    areas: Counter = Counter()
    for f in features:
        areas[f["properties"].get(field)] += f["properties"].get("overlap_m2") or 0
    return [
        {"value": value, "parcels": n, "overlap_m2": round(areas[value], 1)}
        for value, n in counts.most_common()
    ]


def ownership(
    engine: Engine,
    catalogue: Catalogue,
    who: Principal,
    data: dict[str, Any],
    progress: Progress = no_progress,
) -> dict[str, Any]:
    parcels, council = ownership_layers(catalogue, who)
    nearby = parse_distance(data.get("nearby", DEFAULT_NEARBY_M), "nearby", 0, MAX_NEARBY_M)
    with engine.connect() as conn:
        site, described = resolve_area_site(conn, catalogue, who, data)
        progress(20, "Finding the parcels")
        # Parcels that share only an edge with the site are neighbours, not owners of it.
        features, total = features_within(
            conn, parcels, who, site.geometry(), 0, described["area_m2"]
        )
        features = [f for f in features if f["properties"].get("overlap_m2", 0) > 0.01]
        listed_all = total <= MAX_FEATURES_PER_LAYER
        owned = section(parcels, who, features, len(features) if listed_all else total)
        owned["summary"] = {
            name: _summary(features, name)
            for name in ("tenure", "proprietor_category")
            if any(f.name == name for f in parcels.fields)
        }
        sections = [owned]
        if council is not None:
            progress(60, "Finding council land nearby")
            near, near_total = features_within(conn, council, who, site.geometry(), nearby)
            sections.append(section(council, who, near, near_total))
    return {
        "analysis": "ownership",
        "title": "Land ownership",
        "site": described,
        "parameters": {"nearby_m": nearby},
        "sections": sections,
    }
