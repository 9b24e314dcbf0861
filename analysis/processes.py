"""The analyses as pygeoapi processors (OGC API – Processes).

pygeoapi instantiates a processor per request and gives it only the inputs, so the app
binds its databases (primary and replicas) and catalogue here once, and the execution gate in
``mapserver.ogc_processes`` adds the caller's role as the ``access_role`` input
(overwriting anything a client sent), so that results respect access rules.
"""

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError
from sqlalchemy.engine import Engine

from analysis import constraints, jobs, ownership, reach
from analysis.near import MAX_DISTANCE_M, InputError, features_near
from analysis.siting import run_siting
from analysis.siting_outputs import FORMATS, render
from layers.catalogue import Catalogue
from mapserver.access import ROLES, Principal
from mapserver.replicas import Databases
from mapserver.settings import Settings

ROLE_INPUT = "access_role"
# Processes only some roles may run (the gate answers 403 to the others).
LEAST_ROLE = {"defibrillator-siting": "staff"}
_bound: dict[str, Any] = {}


def bind(databases: Databases, catalogue: Catalogue, settings: Settings | None = None) -> None:
    _bound.update(databases=databases, catalogue=catalogue, settings=settings or Settings())


def _primary() -> Engine:
    return _bound["databases"].primary


def _reader() -> Engine:
    """A fresh replica when there is one (a process call has no read-your-writes cookie;
    the layers it reads change only by loads), else the primary."""
    return _bound["databases"].reader()[0]


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
                _reader(), _bound["catalogue"], caller(data),
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
        "otherwise straight line. The sites are proven optimal or within a stated gap of the "
        "optimum (max_gap, 0.5% by default; HiGHS). For staff."
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
                "max_gap",
                "Optimality gap (%)",
                "Stop once the sites are proven within this of the optimum (default 0.5; "
                "0: proven optimal). The result states the gap proven.",
                {"type": "number", "minimum": 0, "maximum": 50},
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
            result = run_siting(  # on the primary: it stages in temporary tables
                _primary(), _bound["catalogue"], who, inputs,
                time_limit=_bound["settings"].siting_time_limit_s,
            )  # fmt: skip
        except InputError as exc:
            raise InvalidInput(user_msg=str(exc)) from None
        return render(result, fmt, _bound["catalogue"].council)


# --- site constraints, incident reach and ownership ----------------------------------------
# Each is a function (engine, catalogue, who, inputs, progress) -> result with a check of
# its inputs that the execution gate runs first, so that bad inputs are a 400 even for
# asynchronous jobs, and a least role (the gate answers 403 below it).


class Forbidden(ProcessorExecuteError):
    http_status_code = HTTPStatus.FORBIDDEN
    ogc_exception_code = "Forbidden"


@dataclass(frozen=True)
class Analysis:
    run: Callable[..., dict[str, Any]]
    check: Callable[[Engine, Catalogue, Principal, dict[str, Any]], None]
    least_role: str
    # Read-only analyses run on a replica; one that builds temporary tables cannot (a hot
    # standby refuses them), so it runs on the primary.
    on_replica: bool = True


GEOMETRY_INPUT = {
    "title": "Location",
    "description": "A GeoJSON geometry in CRS84 (lon/lat). Give this or address.",
    "schema": {"type": "object", "contentMediaType": "application/geo+json"},
    "minOccurs": 0,
    "maxOccurs": 1,
}
ADDRESS_INPUT = {
    "title": "Address or place",
    "description": "Looked up in the gazetteer (as /api/search). Give this or geometry.",
    "schema": {"type": "string", "maxLength": 100},
    "minOccurs": 0,
    "maxOccurs": 1,
}
RESULT_OUTPUT = {
    "result": {
        "title": "The site and one section of features per layer",
        "schema": {"type": "object", "contentMediaType": "application/json"},
    }
}


def _metadata(process_id: str, title: str, description: str, inputs: dict, example: dict,
              keywords: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        "version": "1.0.0", "id": process_id, "title": title, "description": description,
        "jobControlOptions": ["sync-execute", "async-execute"], "keywords": keywords,
        "links": [], "inputs": inputs, "outputs": RESULT_OUTPUT, "example": {"inputs": example},
    }  # fmt: skip


SITE = {"type": "Polygon", "coordinates": [[[-2.1600, 53.4080], [-2.1560, 53.4080],
        [-2.1560, 53.4100], [-2.1600, 53.4100], [-2.1600, 53.4080]]]}  # fmt: skip
CONSTRAINTS_METADATA = _metadata(
    "site-constraints",
    "Site constraints report",
    "Every constraint layer that touches a site (a polygon; a point stands for the land "
    "parcel under it; or an address): flood zones, conservation areas, land parcels, "
    "protected trees and listed buildings within their buffer, planning history; with the "
    "area and share of the site each covers. For staff.",
    {
        "geometry": GEOMETRY_INPUT,
        "address": ADDRESS_INPUT,
        "buffer": {
            "title": "Extra buffer (metres)",
            "description": "Added to each layer's own buffer (default 0).",
            "schema": {"type": "number", "minimum": 0, "maximum": constraints.MAX_EXTRA_BUFFER_M},
            "minOccurs": 0,
            "maxOccurs": 1,
        },  # fmt: skip
    },
    {"geometry": SITE},
    ["planning", "constraints", "site report"],
)
REACH_METADATA = _metadata(
    "incident-reach",
    "Incident reach",
    "Counts and lists of the chosen layers' features within a distance of a point, line or "
    "polygon (or an address), by straight line or along a walking or driving network, with "
    "residents of area layers estimated by area share. For emergency planners and staff.",
    {
        "geometry": GEOMETRY_INPUT,
        "address": ADDRESS_INPUT,
        "layers": {
            "title": "Layers",
            "description": "Collection ids to count.",
            "schema": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "distance": {
            "title": "Distance (metres)",
            "schema": {"type": "number", "minimum": 0, "maximum": reach.MAX_REACH_M},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "mode": {
            "title": "Distance by",
            "description": f"straight (default), or walking or driving along a network "
            f"(at most {reach.MAX_NETWORK_M} m).",
            "schema": {"type": "string", "enum": list(reach.MODES)},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },  # fmt: skip
    {
        "geometry": {"type": "Point", "coordinates": [-2.1575, 53.4084]},
        "distance": 500,
        "layers": ["defibrillators", "polling_stations", "lsoas"],
    },  # fmt: skip
    ["emergency planning", "civil contingency", "incident", "population"],
)
OWNERSHIP_METADATA = _metadata(
    "ownership",
    "Land ownership",
    "Who owns what on a parcel (a point on it), a drawn area or an address: title numbers, "
    "tenure and proprietor category (proprietor names for staff), and council-owned land "
    "nearby. For staff.",
    {
        "geometry": GEOMETRY_INPUT,
        "address": ADDRESS_INPUT,
        "nearby": {
            "title": "Council land within (metres)",
            "schema": {"type": "number", "minimum": 0, "maximum": ownership.MAX_NEARBY_M},
            "minOccurs": 0,
            "maxOccurs": 1,
        },  # fmt: skip
    },
    {"geometry": {"type": "Point", "coordinates": [-2.1575, 53.4084]}},
    ["land", "ownership", "title"],
)
ANALYSES: dict[str, Analysis] = {
    "site-constraints": Analysis(constraints.site_constraints, constraints.check, "staff"),
    "incident-reach": Analysis(reach.incident_reach, reach.check, "emergency", on_replica=False),
    "ownership": Analysis(ownership.ownership, ownership.check, "staff"),
}


def least_role(process_id: str) -> str | None:
    """The least role that may run the process (None: anyone)."""
    analysis = ANALYSES.get(process_id)
    return analysis.least_role if analysis else LEAST_ROLE.get(process_id)


def check_inputs(process_id: str, who: Principal, data: dict[str, Any]) -> None:
    """Raises InputError for inputs the process would refuse (run by the execution gate)."""
    if process_id in ANALYSES:
        ANALYSES[process_id].check(_reader(), _bound["catalogue"], who, data)


class AnalysisProcessor(BaseProcessor):
    process_id: str
    METADATA: dict[str, Any]

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, self.METADATA)
        self.job_id: str | None = None

    def set_job_id(self, job_id: str) -> None:
        self.job_id = job_id

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, dict]:
        who = caller(data)
        analysis = ANALYSES[self.process_id]
        if not who.has(analysis.least_role):
            raise Forbidden(user_msg=f"{self.METADATA['title']} is for {analysis.least_role}")
        engine = _reader() if analysis.on_replica else _primary()
        try:
            result = analysis.run(
                engine, _bound["catalogue"], who, data, jobs.reporter(_primary(), self.job_id)
            )
        except InputError as exc:
            raise InvalidInput(user_msg=str(exc)) from None
        return "application/json", result


class SiteConstraints(AnalysisProcessor):
    process_id, METADATA = "site-constraints", CONSTRAINTS_METADATA


class IncidentReach(AnalysisProcessor):
    process_id, METADATA = "incident-reach", REACH_METADATA


class Ownership(AnalysisProcessor):
    process_id, METADATA = "ownership", OWNERSHIP_METADATA
