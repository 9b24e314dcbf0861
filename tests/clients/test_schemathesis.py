"""schemathesis against the service's two OpenAPI documents, GET operations only, a bounded
number of generated requests per operation: no 5xx, and every response whose status and
media type the document describes must match that description's schema.

- pygeoapi's, ``/ogc/openapi?f=json``: the OGC API (landing page, conformance, collections,
  items, items/{id}, queryables, processes, jobs), where items, items/{id}, queryables and
  restricted layers are answered by our own code (``mapserver/features*.py``).
- ours, ``/api/openapi.json``: health, search, locate, export, layer provenance, tiles.

pygeoapi's document delegates most of its schemas to remote OGC documents by absolute
``$ref``, which cannot be fetched offline (and should not be at test time). They are
replaced by local equivalents before loading (``offline_document``): the OGC API -
Features Part 1 schemas that ``ogctests`` ships (the same definitions, as separate files),
and a few small ones written out here. What differs from pygeoapi's document, and why:

- ``/conformance`` and ``/collections``: pygeoapi documents their 200 as the *landing
  page* response; they are described here as the conformance declaration
  (``confClasses``) and the collection list (``collections``), which is what they are.
- A feature's ``geometry`` may be ``null`` (RFC 7946 3.2; and what ``skipGeometry=true``,
  which pygeoapi documents, asks for); the Part 1 schema omits ``nullable``.
- Processes responses (``ProcessList.yaml`` etc.) have no local copy: their status codes
  and media types are still checked, their bodies are not.

schemathesis's own pytest integration for a schema known only at run time
(``schemathesis.pytest.from_fixture``) fails on pytest 9 (schemathesis 4.32.5 sets
``request.node._nodeid``, which pytest 9 no longer has), so each operation runs through
Hypothesis directly, ``@given(operation.as_strategy(mode))``, with schemathesis's checks.

No parameter is excluded: where pygeoapi documents values our stricter items endpoint
refuses (``f=csv``, ``properties=fid``), we answer 400 with an OGC exception, which these
checks accept (the exception body is checked against its schema).
"""

import copy
import re
from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from .helpers import RESTRICTED_FIELD, RESTRICTED_LAYERS

ogctests = pytest.importorskip("ogctests", reason="ogctests is installed by bootstrap.sh test")

OGC_SCHEMAS = Path(ogctests.__file__).parent / "features" / "schemas"
FEATURES_1 = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
PROCESSES_1 = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/"
CHECKS = [not_a_server_error, response_schema_conformance]
EXAMPLES = 20  # per operation and generation mode (positive, negative)
# Derandomized: the same requests on every run, so that `make test` is reproducible; the
# regression tests at the end come from random runs (drop derandomize to explore).
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

EXCEPTION = {  # OGC API - Features Part 1 / Common: exception.yaml
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}


def _json(schema: str, media_type: str = "application/json") -> dict:
    return {"content": {media_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


RESPONSES = {
    f"{FEATURES_1}#/components/responses/LandingPage": {
        "description": "The landing page",
        **_json("landingPage"),
    },
    f"{FEATURES_1}#/components/responses/Collection": {
        "description": "A collection",
        **_json("collection"),
    },
    f"{FEATURES_1}#/components/responses/Features": {
        "description": "Features",
        **_json("featureCollectionGeoJSON", "application/geo+json"),
    },
    f"{FEATURES_1}#/components/responses/Feature": {
        "description": "A feature",
        **_json("featureGeoJSON", "application/geo+json"),
    },
    f"{FEATURES_1}#/components/responses/InvalidParameter": {
        "description": "A query parameter has an invalid value",
        **_json("exception"),
    },
    f"{FEATURES_1}#/components/responses/NotFound": {
        "description": "Not found",
        **_json("exception"),
    },
    f"{FEATURES_1}#/components/responses/ServerError": {
        "description": "A server error occurred",
        **_json("exception"),
    },
    f"{PROCESSES_1}responses/NotFound.yaml": {"description": "Not found", **_json("exception")},
    f"{PROCESSES_1}responses/ServerError.yaml": {
        "description": "A server error occurred",
        **_json("exception"),
    },
    f"{PROCESSES_1}responses/ProcessList.yaml": {"description": "The processes (not checked)"},
    f"{PROCESSES_1}responses/ExecuteAsync.yaml": {"description": "A job (not checked)"},
}
PARAMETERS = {
    f"{FEATURES_1}#/components/parameters/featureId": {
        "name": "featureId", "in": "path", "required": True, "schema": {"type": "string"},
    },
    # OGC API - Records sortby.yaml: a comma-separated list of [+|-]property.
    "https://raw.githubusercontent.com/opengeospatial/ogcapi-records/master/core/openapi"
    "/parameters/sortby.yaml": {
        "name": "sortby", "in": "query", "required": False, "style": "form", "explode": False,
        "schema": {"type": "array", "minItems": 1,
                   "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}},
    },
}  # fmt: skip
SCHEMAS = {
    f"{PROCESSES_1}schemas/exception.yaml": {"$ref": "#/components/schemas/exception"},
    "https://schemas.opengis.net/ogcapi/tiles/part1/1.0/openapi/ogcapi-tiles-1.yaml"
    "#/components/schemas/link": {"$ref": "#/components/schemas/link"},
}


def _local(node: object, table: dict[str, dict]) -> object:
    """``node`` with every ``{"$ref": <remote>}`` in ``table`` replaced by its value."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"] in table:
            return copy.deepcopy(table[node["$ref"]])
        return {k: _local(v, table) for k, v in node.items()}
    if isinstance(node, list):
        return [_local(v, table) for v in node]
    return node


def _urn_to_component(node: object) -> object:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("urn:"):
            return {**node, "$ref": f"#/components/schemas/{ref[4:]}"}
        return {k: _urn_to_component(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_urn_to_component(v) for v in node]
    return node


def ogc_schemas() -> dict[str, dict]:
    schemas = {}
    for path in sorted(OGC_SCHEMAS.glob("*.yaml")):
        if path.stem != "openapi_schema_v3.0":
            schemas[path.stem] = _urn_to_component(yaml.safe_load(path.read_text()))
    geometry = schemas["featureGeoJSON"]["properties"]["geometry"]
    schemas["featureGeoJSON"]["properties"]["geometry"] = {"allOf": [geometry], "nullable": True}
    schemas["exception"] = EXCEPTION
    return schemas


def remote_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        own = [ref] if isinstance(ref, str) and not ref.startswith("#") else []
        return own + [r for v in node.values() for r in remote_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in remote_refs(v)]
    return []


def offline_document(document: dict) -> dict:
    """pygeoapi's OpenAPI document, GET operations only, with local schemas."""
    document = copy.deepcopy(document)
    document["paths"] = {
        path: {
            "get": item["get"],
            **({"parameters": item["parameters"]} if "parameters" in item else {}),
        }
        for path, item in document["paths"].items()
        if "get" in item
    }
    for path, declared in (("/conformance", "confClasses"), ("/collections", "collections")):
        document["paths"][path]["get"]["responses"]["200"] = {
            "description": declared,
            **_json(declared),
        }
    document = _local(document, {**RESPONSES, **PARAMETERS, **SCHEMAS})
    components = document.setdefault("components", {})
    components["schemas"] = {**ogc_schemas(), **components.get("schemas", {})}
    left = sorted(set(remote_refs(document)))
    assert not left, f"remote $refs without a local copy: {left}"
    return document


def template(path: str) -> str:
    """The path with its collection or process id as a placeholder: operations of one
    template run the same code for every collection."""
    path = re.sub(r"^/collections/[^/{]+", "/collections/{collectionId}", path)
    return re.sub(r"^/processes/[^/{]+", "/processes/{processId}", path)


def exercise(base_url: str, operations: list) -> list[str]:
    """Positive and negative requests for each operation; the failures, one line each."""
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @BOUNDED
            @given(case=operation.as_strategy(mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=60)

            try:
                run()
            except Unsatisfiable:  # nothing to negate (no parameters, or enums only)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # listed, then all asserted
                failures.append(f"{operation.label} ({mode.value}): {describe(exc)}")
    return failures


def describe(exc: BaseException) -> str:
    """schemathesis's failures (a group of checks that failed), the response and a curl
    command to reproduce them."""
    lines = [str(exc)]
    for failure in getattr(exc, "exceptions", ()):
        lines.append(f"- {getattr(failure, 'title', type(failure).__name__)}")
        lines.append(str(getattr(failure, "message", failure)))
    return "\n".join([*lines, *getattr(exc, "__notes__", [])])


def operations_of(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="session")
def ogc_operations(base_url) -> dict[str, list]:
    document = httpx.get(f"{base_url}/ogc/openapi", params={"f": "json"}, timeout=30).json()
    schema = schemathesis.openapi.from_dict(offline_document(document))
    grouped: dict[str, list] = {}
    for operation in operations_of(schema):
        grouped.setdefault(template(operation.path), []).append(operation)
    return grouped


OGC_TEMPLATES = [
    "/", "/conformance", "/openapi", "/collections", "/collections/{collectionId}",
    "/collections/{collectionId}/items", "/collections/{collectionId}/items/{featureId}",
    "/collections/{collectionId}/queryables", "/collections/{collectionId}/schema",
    "/processes", "/processes/{processId}", "/jobs", "/jobs/{jobId}", "/jobs/{jobId}/results",
]  # fmt: skip


def test_every_ogc_operation_is_exercised(ogc_operations):
    assert set(ogc_operations) <= set(OGC_TEMPLATES)


@pytest.mark.parametrize("path", OGC_TEMPLATES)
def test_ogc_api(ogc_operations, ogc_url, path):
    operations = ogc_operations.get(path, [])
    if not operations:
        pytest.skip(f"pygeoapi documents no GET {path}")
    failures = exercise(ogc_url, operations)
    assert not failures, "\n\n".join(failures)


def test_own_api(base_url):
    document = httpx.get(f"{base_url}/api/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document).include(method="GET")
    failures = exercise(base_url, operations_of(schema))
    assert not failures, "\n\n".join(failures)


# --- the documents themselves ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["/ogc/openapi?f=json", "/api/openapi.json"])
def test_documents_do_not_name_restricted_layers(client, url):
    document = client.get(url)
    assert document.status_code == 200
    for layer in RESTRICTED_LAYERS:
        assert f"/collections/{layer}" not in document.text and f'"{layer}"' not in document.text


def test_ogc_document_does_not_name_a_restricted_field(client):
    layer, field = RESTRICTED_FIELD
    assert field not in client.get("/ogc/openapi", params={"f": "json"}).text


# --- what schemathesis found (random runs), kept as regression tests -----------------------


def once(base_url: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request on a connection of its own: after a 500 the server resets the kept-alive
    connection, which would fail the next test's request on the shared client."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        return http.request(method, path, **kwargs)


NUL = "a\x00b"  # a NUL character: valid in a URL (%00), refused by PostgreSQL in text


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/ogc/collections/libraries/items", {"name": NUL}, None),
        ("GET", "/ogc/collections/libraries/items", {"filter": f"name = '{NUL}'"}, None),
        ("GET", "/ogc/collections/libraries/items", {"filter": f"name LIKE '{NUL}%'"}, None),
        ("GET", "/api/export/libraries", {"name": NUL}, None),
        ("GET", "/api/export/libraries", {"filter": f"name = '{NUL}'"}, None),
        ("GET", "/api/search", {"q": NUL}, None),
        ("POST", "/ogc/collections/libraries/items", {},
         {"op": "=", "args": [{"property": "name"}, NUL]}),
    ],
    ids=["items-property", "items-cql2", "items-cql2-like", "export-property", "export-cql2",
         "search", "items-cql2-json-post"],
)  # fmt: skip
def test_nul_is_400(base_url, method, path, params, body):
    response = once(base_url, method, path, params=params, json=body)
    assert response.status_code == 400, (response.status_code, response.text[:200])
    assert response.json()["code"]


@pytest.mark.parametrize("feature_id", ["¹", "-¹", "1¹", "①"])
def test_feature_id_with_a_superscript_digit_is_404(base_url, feature_id):
    response = once(base_url, "GET", f"/ogc/collections/libraries/items/{feature_id}")
    assert response.status_code == 404, (response.status_code, response.text[:200])
    assert response.json()["code"] == "NotFound"


@pytest.mark.parametrize(("lon", "lat"), [(80.6857137737876, 0.0), (-91.86985665247319, 1.09)])
def test_locate_far_from_britain_is_not_a_500(base_url, lon, lat):
    response = once(base_url, "GET", "/api/locate", params={"lon": lon, "lat": lat})
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert response.json()["inside"] is False


@pytest.mark.parametrize("path", ["/ogc/jobs/a%0Ab", "/ogc/jobs/a%0Ab/results"])
def test_unknown_job_is_an_ogc_exception(base_url, path):
    response = once(base_url, "GET", path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    assert response.json().get("code"), response.text[:200]


@pytest.mark.parametrize("fmt", ["html", "jsonld"])
def test_huge_offset_is_400(base_url, fmt):
    params = {"f": fmt, "offset": str(10**20)}
    response = once(base_url, "GET", "/ogc/collections/watercourses/items", params=params)
    assert response.status_code == 400, (response.status_code, response.text[:200])


@pytest.mark.parametrize("fmt", ["html", "jsonld"])
def test_bbox_with_heights_in_html(base_url, fmt):
    params = {"f": fmt, "bbox": "-2.2,53.38,0,-2.1,53.42,10"}
    response = once(base_url, "GET", "/ogc/collections/wards/items", params=params)
    assert response.status_code == 200, (response.status_code, response.text[:200])
