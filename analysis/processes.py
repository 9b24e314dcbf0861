"""The analyses as pygeoapi processors (OGC API – Processes).

pygeoapi instantiates a processor per request and gives it only the inputs, so the app
binds its database pool and catalogue here once, and the execution gate in
``mapserver.ogc_processes`` adds the caller's role as the ``access_role`` input
(overwriting anything a client sent), so that results respect access rules.
"""

from http import HTTPStatus
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError
from sqlalchemy.engine import Engine

from analysis.near import MAX_DISTANCE_M, InputError, features_near
from analysis.siting import run_siting
from analysis.siting_outputs import FORMATS, render
from layers.catalogue import Catalogue
from mapserver.access import ROLES, Principal
from mapserver.settings import Settings

ROLE_INPUT = "access_role"
# Processes only some roles may run (the gate answers 403 to the others).
LEAST_ROLE = {"defibrillator-siting": "staff"}
_bound: dict[str, Any] = {}


def bind(engine: Engine, catalogue: Catalogue, settings: Settings | None = None) -> None:
    _bound.update(engine=engine, catalogue=catalogue, settings=settings or Settings())


class InvalidInput(ProcessorExecuteError):
    http_status_code = HTTPStatus.BAD_REQUEST
    ogc_exception_code = "InvalidParameterValue"


NEAR_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": "features-near-location",
    "title": "Features near a location",
    "description": (
        "Features of the chosen layers within a distance (metres) of a point, line or "
        "polygon in CRS84, nearest first and grouped by layer. Layers you may not read "
        "count as unknown."
    ),
    "jobControlOptions": ["sync-execute", "async-execute"],
    "keywords": ["emergency planning", "proximity", "incident"],
    "links": [],
    "inputs": {
        "layers": {
            "title": "Layers",
            "description": "Collection ids to search.",
            "schema": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "geometry": {
            "title": "Location",
            "description": "A GeoJSON point, line or polygon in CRS84 (lon/lat).",
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "distance": {
            "title": "Distance (metres)",
            "schema": {"type": "number", "minimum": 0, "maximum": MAX_DISTANCE_M},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "result": {
            "title": "Features by layer",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    "example": {
        "inputs": {
            "layers": ["libraries", "pharmacies"],
            "geometry": {"type": "Point", "coordinates": [-2.1575, 53.4084]},
            "distance": 1000,
        }
    },
}


def caller(data: dict[str, Any]) -> Principal:
    role = data.get(ROLE_INPUT)
    return Principal(role if role in ROLES else None)


class FeaturesNearLocation(BaseProcessor):
    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, NEAR_METADATA)

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, dict]:
        missing = [name for name in ("layers", "geometry", "distance") if name not in data]
        if missing:
            raise InvalidInput(user_msg=f"missing input: {', '.join(missing)}")
        try:
            result = features_near(
                _bound["engine"], _bound["catalogue"], caller(data),
                data["layers"], data["geometry"], data["distance"],
            )  # fmt: skip
        except InputError as exc:
            raise InvalidInput(user_msg=str(exc)) from None
        return "application/json", result


SITING_METADATA: dict[str, Any] = {
    "version": "1.0.0",
    "id": "defibrillator-siting",
    "title": "Defibrillator siting (maximal covering location)",
    "description": (
        "Where new public-access defibrillators would reach the most demand within a "
        "distance (100 m by default) or walking time: either p new sites, or the fewest "
        "sites reaching a target coverage. Existing sites are kept. Distance by route over "
        "the walking network when one is loaded (reported beside straight-line coverage), "
        "otherwise straight line. Solved exactly (HiGHS). For staff."
    ),
    "jobControlOptions": ["sync-execute", "async-execute"],
    "keywords": ["defibrillators", "AED", "location-allocation", "MCLP", "set cover"],
    "links": [],
    "inputs": {
        name: {
            "title": title,
            "description": description,
            "schema": schema,
            "minOccurs": 1 if name in ("demand_layer", "candidate_layer") else 0,
            "maxOccurs": 1,
        }
        for name, title, description, schema in (
            (
                "demand_layer",
                "Demand layer",
                "Point or polygon layer (polygons become a grid of points sharing their weight).",
                {"type": "string"},
            ),
            (
                "weight_field",
                "Weight field",
                "A number field of the demand layer; none: every feature weighs 1.",
                {"type": "string"},
            ),
            ("demand_filter", "Demand filter", "CQL2 text.", {"type": "string"}),
            (
                "demand_spacing",
                "Grid spacing in polygons (m)",
                "Default 100.",
                {"type": "number", "minimum": 10, "maximum": 1000},
            ),
            ("candidate_layer", "Candidate sites", "Point layer.", {"type": "string"}),
            (
                "candidate_filter",
                "Candidate filter",
                "CQL2 text, e.g. access = '24/7'.",
                {"type": "string"},
            ),
            (
                "candidates_within",
                "Candidates within",
                'Polygon layers candidates must lie in, e.g. [{"layer": "council_owned_land"}].',
                {"type": "array"},
            ),
            (
                "candidates_outside",
                "Candidates outside",
                "Polygon layers candidates must avoid, "
                'e.g. [{"layer": "flood_zones", "filter": "zone = \'3\'"}].',
                {"type": "array"},
            ),
            ("label_field", "Label field", "Candidate field naming each site.", {"type": "string"}),
            (
                "fixed_layer",
                "Existing sites",
                "Point layer of sites kept (e.g. defibrillators).",
                {"type": "string"},
            ),
            ("fixed_filter", "Existing sites filter", "CQL2 text.", {"type": "string"}),
            (
                "distance",
                "Coverage distance (m)",
                "Default 100.",
                {"type": "number", "minimum": 1, "maximum": 2000},
            ),
            (
                "walking_time",
                "Walking time (s)",
                "Instead of distance, at 1.33 m/s.",
                {"type": "number", "minimum": 1, "maximum": 1503},
            ),
            (
                "distance_type",
                "Distance type",
                "auto (route when a walking network is loaded), route or straight.",
                {"type": "string", "enum": ["auto", "route", "straight"]},
            ),
            (
                "p",
                "New sites",
                "How many new sites (or give target_coverage).",
                {"type": "integer", "minimum": 0},
            ),
            (
                "target_coverage",
                "Target coverage (%)",
                "The fewest new sites reaching it.",
                {"type": "number", "minimum": 0.001, "maximum": 100},
            ),
            (
                "area",
                "Study area",
                "GeoJSON polygon (CRS84) limiting demand and candidates.",
                {"type": "object", "contentMediaType": "application/geo+json"},
            ),
            (
                "format",
                "Result format",
                "json (default), geojson, csv, html (map) or pdf.",
                {"type": "string", "enum": ["json", "geojson", "csv", "html", "pdf"]},
            ),
        )
    },  # fmt: skip
    "outputs": {
        "result": {
            "title": "Chosen sites, coverage before and after, uncovered demand",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    "example": {
        "inputs": {
            "demand_layer": "lsoas",
            "candidate_layer": "pharmacies",
            "fixed_layer": "defibrillators",
            "distance": 100,
            "p": 10,
        }
    },
}


class DefibrillatorSiting(BaseProcessor):
    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, SITING_METADATA)

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, Any]:
        who = caller(data)
        inputs = {k: v for k, v in data.items() if k not in (ROLE_INPUT, "format")}
        fmt = data.get("format", "json")
        if fmt not in FORMATS:
            raise InvalidInput(user_msg=f"format must be one of {', '.join(FORMATS)}")
        try:
            result = run_siting(
                _bound["engine"], _bound["catalogue"], who, inputs,
                time_limit=_bound["settings"].siting_time_limit_s,
            )  # fmt: skip
        except InputError as exc:
            raise InvalidInput(user_msg=str(exc)) from None
        return render(result, fmt, _bound["catalogue"].council)
