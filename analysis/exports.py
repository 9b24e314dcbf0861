"""A saved analysis result as files: GeoJSON (the site and every feature found, tagged with
its layer) and CSV (one row per feature, formula-safe, geometry as WKT)."""

import csv
import io
from typing import Any

from shapely.geometry import shape

from mapserver.export import safe_cell

MEASURES = ("distance_m", "overlap_m2", "share", "population_estimate")


def result_geojson(result: dict[str, Any]) -> dict[str, Any]:
    site = result["site"]
    features = [
        {
            "type": "Feature",
            "id": "site",
            "geometry": site["geometry"],
            "properties": {"layer": "site", "label": site["label"], "area_m2": site["area_m2"]},
        }
    ]
    for section in result["sections"]:
        for feature in section["features"]:
            properties = {"layer": section["layer"], **feature["properties"]}
            features.append({**feature, "id": f"{section['layer']}.{feature['id']}",
                             "properties": properties})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def result_csv(result: dict[str, Any]) -> str:
    fields: dict[str, str] = {}
    for section in result["sections"]:
        for field in section["fields"]:
            fields.setdefault(field["name"], field["label"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["layer", "id", *MEASURES, *fields.values(), "wkt"])
    for section in result["sections"]:
        for feature in section["features"]:
            p = feature["properties"]
            writer.writerow(
                [section["layer"], feature["id"], *(safe_cell(p.get(m)) for m in MEASURES),
                 *(safe_cell(p.get(name)) for name in fields), shape(feature["geometry"]).wkt]
            )  # fmt: skip
    return out.getvalue()
