"""The analyses' staff pages in a real browser: draw or pick a site on the map, run the
analysis as a job, see the result, download the PDF; the jobs page; axe on each page."""

import pytest

from mapserver.sessions import create_user
from tests.analysis.conftest import geojson_of
from tests.browser import axe_violations

PASSWORD = "a long enough password"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def planner(engine) -> str:
    email = "analyst@example.gov.uk"
    create_user(engine, email, "An Analyst", "staff", PASSWORD)
    return email


@pytest.fixture
def signed_in(page, planner):
    page.goto("/login?next=/analysis")
    page.get_by_label("Email address").fill(planner)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/analysis")
    return page


def open_analysis(page, slug: str, centre: list[float]) -> None:
    page.goto(f"/analysis/{slug}?lat={centre[1]}&lng={centre[0]}&zoom=17")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)


def click_at(page, lon: float, lat: float) -> None:
    x, y = page.evaluate(
        "([lat, lon]) => { const p = window.__map.latLngToContainerPoint([lat, lon]);"
        " return [p.x, p.y]; }",
        [lat, lon],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def run_and_wait(page):
    page.get_by_role("button", name="Run the analysis").click()
    page.wait_for_selector("#analysis-results[data-state=done]", timeout=30_000)
    return page.locator("#analysis-results")


def test_site_constraints_page(signed_in, flood_site, artifacts):
    page = signed_in
    ring = flood_site["coordinates"][0]
    centre = [sum(c[0] for c in ring[:4]) / 4, sum(c[1] for c in ring[:4]) / 4]
    open_analysis(page, "constraints", centre)
    assert axe_violations(page, artifacts / "axe-analysis-constraints.json") == []
    page.get_by_role("button", name="Draw a polygon").click()
    for lon, lat in ring[:4]:
        click_at(page, lon, lat)
    page.get_by_role("button", name="Finish").click()
    assert page.locator("#map").get_attribute("data-site") == "polygon"
    results = run_and_wait(page)
    assert "Flood zones" in results.inner_text() and "Flood zone 3" in results.inner_text()
    pdf = page.request.get(
        results.get_by_role("link", name="PDF report with a map").get_attribute("href")
    )
    assert pdf.ok and pdf.body().startswith(b"%PDF") and len(pdf.body()) > 10_000
    (artifacts / "constraints-report.pdf").write_bytes(pdf.body())
    assert axe_violations(page, artifacts / "axe-analysis-constraints-result.json") == []


def test_incident_reach_page(signed_in, town_centre, artifacts):
    page = signed_in
    open_analysis(page, "reach", town_centre["coordinates"])
    page.get_by_role("button", name="Place a point").click()
    click_at(page, *town_centre["coordinates"])
    page.get_by_label("Distance (metres)").fill("400")
    results = run_and_wait(page)
    text = results.inner_text()
    assert "Defibrillators" in text and "residents" in text
    job = results.get_attribute("data-job")
    assert f"job={job}" in page.url
    csv = page.request.get(f"/jobs/{job}/result.csv")
    assert csv.ok and csv.text().startswith("layer,id")
    assert axe_violations(page, artifacts / "axe-analysis-reach-result.json") == []
    page.goto(f"/analysis/reach?job={job}")  # a shared link shows the saved result
    page.wait_for_selector(f"#analysis-results[data-job='{job}'][data-state=done]")


def test_ownership_page_picks_a_parcel(signed_in, engine, artifacts):
    page = signed_in
    point = geojson_of(engine, "SELECT ST_PointOnSurface(geom) FROM layers.council_owned_land"
                       " ORDER BY fid LIMIT 1")  # fmt: skip
    open_analysis(page, "ownership", point["coordinates"])
    page.get_by_role("button", name="Pick a land parcel").click()
    click_at(page, *point["coordinates"])
    text = run_and_wait(page).inner_text()
    assert "Land ownership" in text and "Council-owned land" in text and "council" in text


def test_bad_input_is_shown_as_an_error(signed_in, town_centre):
    page = signed_in
    open_analysis(page, "reach", town_centre["coordinates"])
    page.get_by_role("button", name="Run the analysis").click()
    summary = page.locator("#analysis-errors")
    summary.wait_for()
    assert "Draw the site on the map, or enter an address" in summary.inner_text()
    page.get_by_label("Or an address or place").fill("zzqqxx nowhere at all")
    page.get_by_role("button", name="Run the analysis").click()
    page.wait_for_function(
        "() => document.querySelector('#analysis-errors').innerText.includes('no place')"
    )


def test_jobs_page(signed_in, artifacts):
    page = signed_in
    page.goto("/jobs")
    assert page.get_by_role("heading", name="Analysis jobs").count() == 1
    assert axe_violations(page, artifacts / "axe-jobs.json") == []
    page.locator("#jobs-table a").first.click()
    page.get_by_role("link", name="PDF report with a map").wait_for()
    assert axe_violations(page, artifacts / "axe-job.json") == []
    page.goto("/analysis")
    assert axe_violations(page, artifacts / "axe-analysis.json") == []


def test_anonymous_people_are_asked_to_sign_in(page):
    page.goto("/analysis/constraints")
    assert "/login" in page.url


def test_reach_from_an_address_with_suggestions(signed_in, scalar, town_centre):
    page = signed_in
    label = scalar(
        "SELECT label FROM app.gazetteer WHERE layer = 'libraries' ORDER BY label LIMIT 1"
    )
    open_analysis(page, "reach", town_centre["coordinates"])
    page.get_by_label("Or an address or place").fill(label[:6])
    # An arrow function: a bare expression is eval'd, which the pages' CSP forbids.
    page.wait_for_function("() => document.querySelectorAll('#address-suggestions option').length")
    page.get_by_label("Or an address or place").fill(label)
    assert label in run_and_wait(page).inner_text()
