"""The staff page for defibrillator siting: closed to others, runs the process, accessible."""

import httpx
import pytest

from mapserver.access import create_key
from mapserver.sessions import create_user
from tests.browser import axe_violations
from tests.mapserver.test_login import sign_in

PASSWORD = "siting page password 1"


@pytest.fixture(scope="module")
def staff_email(engine):
    create_user(engine, "siting.staff@example.gov.uk", "Siting Staff", "staff", PASSWORD)
    return "siting.staff@example.gov.uk"


def test_page_is_closed_to_the_public(client, engine):
    response = client.get("/staff/siting", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    emergency = create_key(engine, "siting page emergency", "emergency")[1]
    assert client.get("/staff/siting", headers={"X-API-Key": emergency}).status_code == 404


def test_page_for_staff(base_url, staff_email):
    with httpx.Client(base_url=base_url) as http:
        assert sign_in(http, staff_email, PASSWORD, "/staff/siting").status_code == 303
        page = http.get("/staff/siting")
        assert page.status_code == 200
        assert 'id="siting-config"' in page.text and "council_owned_land" in page.text
        assert 'href="/analysis"' in http.get("/").text  # the header's link to the analyses
        assert 'href="/staff/siting"' in http.get("/analysis").text


@pytest.mark.browser
def test_run_from_the_page(page, staff_email, artifacts):
    page.goto("/login?next=/staff/siting")
    page.get_by_label("Email address").fill(staff_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#siting-map[data-ready=true]", timeout=20_000)
    assert axe_violations(page, artifacts / "axe-siting-form.json") == []
    page.get_by_label("In a straight line").check()
    page.get_by_label("Number of sites, or coverage in %").fill("3")
    page.get_by_label("Not in flood zone 3").check()
    page.get_by_role("button", name="Find sites").click()
    page.wait_for_selector("#siting-results:not([hidden])", timeout=90_000)
    rows = page.locator("#siting-sites tbody tr")
    assert 1 <= rows.count() <= 3
    assert page.locator("#siting-coverage tbody tr").first.inner_text().startswith("Straight")
    assert "These sites are proven " in page.locator("#siting-uncovered").inner_text()
    assert int(page.locator("#siting-map").get_attribute("data-drawn")) > 3
    assert axe_violations(page, artifacts / "axe-siting-results.json") == []
    page.screenshot(path=artifacts / "siting-results.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "defibrillator-siting.csv"
    page.get_by_label("Coverage distance (metres)").fill("99999")
    page.get_by_role("button", name="Find sites").click()
    page.wait_for_selector("#siting-errors:not([hidden])")
    assert "distance must be a number from 1 to 2000" in page.locator("#siting-errors").inner_text()


@pytest.mark.browser
def test_standalone_html_map_draws_offline(page, client, engine):
    """The folium map runs with nothing but itself: no network, no script errors (site
    names with backticks, as some real polling stations have, once broke it)."""
    key = create_key(engine, "siting html", "staff")[1]
    around = [[-2.145, 53.383], [-2.125, 53.383], [-2.125, 53.394], [-2.145, 53.394]]
    inputs = {"demand_layer": "lsoas", "candidate_layer": "polling_stations",
              "fixed_layer": "defibrillators", "p": 2, "distance_type": "straight",
              "area": {"type": "Polygon", "coordinates": [[*around, around[0]]]},
              "format": "html"}  # fmt: skip
    response = client.post(
        "/ogc/processes/defibrillator-siting/execution",
        json={"inputs": inputs},
        headers={"X-API-Key": key},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert "St Saviour&amp;#96;s" in response.text or "St Saviour&#96;s" in response.text
    page.route("**/*", lambda route: route.abort())  # offline: any request fails
    page.set_content(response.text)
    page.wait_for_selector(".leaflet-container path.leaflet-interactive")
    assert page.locator(".leaflet-container path.leaflet-interactive").count() > 100
