"""Site constraints report (planning): every constraint layer of the catalogue that touches
a site, or comes within the layer's buffer of it, with the area and share of the site it
covers (flood zones by zone), and the features themselves: land parcels with their tenure
and proprietor category, protected trees, listed buildings, planning history.

Which layers are constraints, and their buffers, come from the catalogue (``constraint:``
in a layer's YAML); the caller sees only the layers and fields their role may read.
"""

from typing import Any

from sqlalchemy.engine import Engine

from analysis.sections import Progress, covered, features_within, is_area, no_progress, section
from analysis.sites import parse_distance, resolve_area_site
from layers.catalogue import Catalogue
from mapserver.access import Principal

MAX_EXTRA_BUFFER_M = 500


def constraint_layers(catalogue: Catalogue, who: Principal) -> list:
    return [
        layer for layer in catalogue.layers.values() if layer.constraint and who.can_read(layer)
    ]


def check(engine: Engine, catalogue: Catalogue, who: Principal, data: dict[str, Any]) -> None:
    """Everything that can be wrong with the inputs, before a job starts."""
    parse_distance(data.get("buffer", 0), "buffer", 0, MAX_EXTRA_BUFFER_M)
    with engine.connect() as conn:
        resolve_area_site(conn, catalogue, who, data)


def site_constraints(
    engine: Engine,
    catalogue: Catalogue,
    who: Principal,
    data: dict[str, Any],
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """The report: the site, then one section per constraint layer (empty ones included,
    so the report shows what was checked). ``buffer`` widens every layer's own buffer."""
    extra = parse_distance(data.get("buffer", 0), "buffer", 0, MAX_EXTRA_BUFFER_M)
    layers = constraint_layers(catalogue, who)
    sections = []
    with engine.connect() as conn:
        site, described = resolve_area_site(conn, catalogue, who, data)
        area = described["area_m2"]
        for done, layer in enumerate(layers):
            progress(10 + 85 * done // max(len(layers), 1), f"Checking {layer.title.lower()}")
            assert layer.constraint
            buffer_m = layer.constraint.buffer_m + extra
            features, total = features_within(conn, layer, who, site.geometry(), buffer_m, area)
            found = section(layer, who, features, total)
            found["buffer_m"] = buffer_m
            found["on_site"] = sum(1 for f in features if f["properties"]["distance_m"] == 0)
            if is_area(layer) and area:
                overlap = covered(conn, layer, site.geometry()).get(None, 0.0)
                found.update(overlap_m2=round(overlap, 1), share=round(overlap / area, 4))
                if group_by := layer.constraint.group_by:
                    found["group_label"] = next(f.label for f in layer.fields if f.name == group_by)
                    found["groups"] = [
                        {"value": value, "overlap_m2": round(m2, 1), "share": round(m2 / area, 4)}
                        for value, m2 in covered(conn, layer, site.geometry(), group_by).items()
                    ]
            sections.append(found)
    return {
        "analysis": "site-constraints",
        "title": "Site constraints report",
        "site": described,
        "parameters": {"buffer_m": extra},
        "sections": sections,
    }
