"""Open311 GeoReport v2 over real HTTP: the `georeport` client from PyPI (which no one
here wrote) reads services, definitions and requests in JSON and XML; the rest is
checked against the specification: POST with api_key, filters and their limits, the
error format and status codes, tokens, and FixMyStreet's servicerequestupdates."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from georeport import GeoReport

from mapserver.access import create_key

from .conftest import INSIDE, OUTSIDE, key

PERSONAL = ("Olive Open", "olive@example.org", "07700 900123")


@pytest.fixture(scope="module")
def keys(engine):
    return {role: create_key(engine, f"open311 {role}", role)[1] for role in ("emergency", "staff")}


@pytest.fixture(scope="module")
def posted(client, keys):
    """A request made through Open311 by a partner system, with personal details."""
    answer = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": keys["emergency"],
            "service_code": "SL01",
            "lat": INSIDE["lat"],
            "long": INSIDE["lon"],
            "description": "Lamp out all week\nThe one outside the library.",
            "first_name": "Olive",
            "last_name": "Open",
            "email": PERSONAL[1],
            "phone": PERSONAL[2],
            "attribute[fault]": "off_at_night",
        },
        headers={"Idempotency-Key": "open311-" + key()},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()[0]["service_request_id"], answer.request.headers["idempotency-key"]


@pytest.fixture(params=["json", "xml"])
def georeport(request, base_url):
    return GeoReport(f"{base_url}/open311/v2", output_format=request.param)


def test_services_and_definitions_through_georeport(georeport):
    services = georeport.get_service_list()
    by_code = {s["service_code"]: s for s in services}
    assert {"SL01", "DR01", "FL01", "FL03", "HW01", "EN01", "OT01"} <= set(by_code)
    assert by_code["SL01"]["service_name"] == "Street light fault"
    assert str(by_code["SL01"]["metadata"]).lower() == "true"
    definition = georeport.get_service_definition("FL03")
    attributes = definition["attributes"]
    if georeport.output_format == "xml":  # xmltodict: a list under its singular element
        attributes = attributes["attribute"]
    rooms = next(a for a in attributes if a["code"] == "rooms_affected")
    assert rooms["datatype"] == "multivaluelist"
    assert str(rooms["required"]).lower() == "true"


def test_requests_through_georeport_carry_no_personal_data(georeport, posted, client):
    reference, _ = posted
    one = georeport.get_service_request(reference)
    assert one["service_request_id"] == reference
    assert one["status"] == "open" and one["service_code"] == "SL01"
    assert one["description"].startswith("Lamp out all week")
    listed = georeport.get_service_requests(service_code="SL01", status="open")
    listed = listed if isinstance(listed, list) else [listed]
    assert reference in {r["service_request_id"] for r in listed}
    for body in (
        client.get(f"/open311/v2/requests/{reference}.json").text,
        client.get(f"/open311/v2/requests/{reference}.xml").text,
        client.get("/open311/v2/requests.json").text,
    ):
        for detail in PERSONAL:
            assert detail not in body


def test_posted_request_is_a_report_with_its_answers(posted, engine, scalar):
    reference, _ = posted
    assert scalar("SELECT source FROM app.reports WHERE reference = :r", r=reference) == "open311"
    assert (
        scalar("SELECT answers->>'fault' FROM app.reports WHERE reference = :r", r=reference)
        == "off_at_night"
    )
    assert scalar("SELECT title FROM app.reports WHERE reference = :r", r=reference) == (
        "Lamp out all week"
    )


def test_one_request_is_a_list_of_one_and_xml_is_well_formed(client, posted):
    reference, _ = posted
    answer = client.get(f"/open311/v2/requests/{reference}.json")
    assert isinstance(answer.json(), list) and len(answer.json()) == 1
    xml = client.get(f"/open311/v2/requests/{reference}.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "service_requests"
    assert root.find("request/service_request_id").text == reference


def test_token_finds_the_request_again_and_a_retry_makes_no_second(client, posted, keys, scalar):
    reference, token = posted
    found = client.get(f"/open311/v2/tokens/{token}.json")
    assert found.json() == [{"service_request_id": reference, "token": token}]
    before = scalar("SELECT count(*) FROM app.reports")
    retry = client.post(
        "/open311/v2/requests.json",
        data={"api_key": keys["emergency"], "service_code": "SL01", **_where(INSIDE)},
        headers={"Idempotency-Key": token},
    )
    assert retry.status_code == 200 and retry.json()[0]["service_request_id"] == reference
    assert scalar("SELECT count(*) FROM app.reports") == before
    assert client.get("/open311/v2/tokens/no-such-token.json").status_code == 404


def _where(place):
    return {"lat": place["lat"], "long": place["lon"]}


EMERGENCY = object()  # stands for the emergency key of the `keys` fixture


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        ({"service_code": "SL01", **_where(INSIDE)}, 403, "api_key is required"),
        ({"api_key": "msk_wrong", "service_code": "SL01", **_where(INSIDE)}, 403, "not valid"),
        ({"api_key": EMERGENCY, "service_code": "NOPE", **_where(INSIDE)}, 404, "service_code"),
        ({"api_key": EMERGENCY, "service_code": "HW01"}, 400, "lat and long are required"),
        ({"api_key": EMERGENCY, "service_code": "HW01", **_where(OUTSIDE)}, 400, "Manchester"),
        ({"api_key": EMERGENCY, "service_code": "SL01", **_where(INSIDE)}, 400, "the light"),
        ({"api_key": EMERGENCY, "service_code": "HW01", "lat": "north", "long": "-2"}, 400, "map"),
    ],
)
def test_bad_posts_get_the_spec_error_format(client, keys, data, status, words, scalar):
    data = {k: keys["emergency"] if v is EMERGENCY else v for k, v in data.items()}
    before = scalar("SELECT count(*) FROM app.reports")
    for fmt in ("json", "xml"):
        answer = client.post(f"/open311/v2/requests.{fmt}", data=data)
        assert answer.status_code == status, answer.text
        if fmt == "json":
            body = answer.json()
            assert body[0]["code"] == status and words in body[0]["description"]
        else:
            root = ET.fromstring(answer.content)
            assert root.tag == "errors" and root.find("error/code").text == str(status)
            assert words in root.find("error/description").text
    assert scalar("SELECT count(*) FROM app.reports") == before


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start_date=yesterday", 400),
        ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", 400),
        ("start_date=2026-06-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", 400),
        ("status=pending", 400),
        ("jurisdiction_id=elsewhere.gov.uk", 404),
    ],
)
def test_bad_filters(client, query, status):
    answer = client.get(f"/open311/v2/requests.json?{query}")
    assert answer.status_code == status
    assert answer.json()[0]["code"] == status


def test_filters_and_defaults(client, posted):
    reference, _ = posted
    now = datetime.now(UTC)
    window = {
        "start_date": (now - timedelta(days=1)).isoformat(),
        "end_date": (now + timedelta(days=1)).isoformat(),
    }
    listed = client.get("/open311/v2/requests.json", params=window).json()
    assert reference in {r["service_request_id"] for r in listed}
    old = {"end_date": (now - timedelta(days=200)).isoformat()}
    assert client.get("/open311/v2/requests.json", params=old).json() == []
    closed = client.get("/open311/v2/requests.json", params={"status": "closed"}).json()
    assert reference not in {r["service_request_id"] for r in closed}
    several = client.get(
        "/open311/v2/requests.json", params={"service_request_id": f"{reference},SMBC-1-1"}
    ).json()
    assert [r["service_request_id"] for r in several] == [reference]


def test_unknown_things_are_404_in_the_spec_shape(client):
    assert client.get("/open311/v2/requests/SMBC-2026-999999.json").status_code == 404
    assert client.get("/open311/v2/services/NOPE.xml").status_code == 404
    unknown_format = client.get("/open311/v2/services.yaml")
    assert unknown_format.status_code == 404
    assert ET.fromstring(unknown_format.content).tag == "errors"


def test_discovery(client, base_url):
    body = client.get("/open311/v2/discovery.json").json()
    assert body["endpoints"][0]["url"] == f"{base_url}/open311/v2"
    assert "text/xml" in body["endpoints"][0]["formats"]
    root = ET.fromstring(client.get("/open311/v2/discovery.xml").content)
    assert root.find("endpoints/endpoint/specification").text.endswith("GeoReport_v2")


def test_pushed_updates_change_state_and_are_listed(client, keys, posted, scalar):
    reference, _ = posted
    refused = client.post(
        "/open311/v2/servicerequestupdates.json",
        data={"api_key": keys["emergency"], "service_request_id": reference, "status": "fixed"},
    )
    assert refused.status_code == 403  # an emergency key reads; only staff keys write back
    pushed = client.post(
        "/open311/v2/servicerequestupdates.xml",
        data={
            "api_key": keys["staff"],
            "service_request_id": reference,
            "status": "FIXED".lower(),
            "description": "New lantern fitted.",
            "update_id": "ext-1",
        },
    )
    assert pushed.status_code == 200, pushed.text
    assert ET.fromstring(pushed.content).find("request_update/update_id").text
    assert scalar("SELECT state FROM app.reports WHERE reference = :r", r=reference) == "fixed"
    one = client.get(f"/open311/v2/requests/{reference}.json").json()[0]
    assert one["status"] == "closed" and one["status_notes"] == "New lantern fitted."
    updates = client.get("/open311/v2/servicerequestupdates.json").json()
    mine = [u for u in updates if u["service_request_id"] == reference]
    assert mine[-1]["description"] == "New lantern fitted." and mine[-1]["status"] == "closed"
    bad = client.post(
        "/open311/v2/servicerequestupdates.json",
        data={"api_key": keys["staff"], "service_request_id": reference, "status": "melted"},
    )
    assert bad.status_code == 400
    missing = client.post(
        "/open311/v2/servicerequestupdates.json",
        data={"api_key": keys["staff"], "service_request_id": "SMBC-2026-999999",
              "description": "x"},
    )  # fmt: skip
    assert missing.status_code == 404
