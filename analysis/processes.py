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
from layers.catalogue import Catalogue
from mapserver.access import ROLES, Principal

ROLE_INPUT = "access_role"
_bound: dict[str, Any] = {}


def bind(engine: Engine, catalogue: Catalogue) -> None:
    _bound.update(engine=engine, catalogue=catalogue)


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
