"""The resident's flow in Debian's chromium: report from the map with a photo, report an
asset, the "Is this it?" prompt and me-too, outside the borough, staff fixing it, the
reporter reopening it; hostile text stays text; axe-core on every page."""

import io
import re

import piexif
import pytest
from PIL import Image
from sqlalchemy import text

from tests.browser import axe_violations

from .conftest import INSIDE, OUTSIDE, PASSWORD, jpeg_with_gps, key, report_form

XSS = '<img src=x onerror="window.__xss=1">"><script>window.__xss=1</script>'


def open_report_page(page, lon, lat, zoom=18, extra=""):
    page.goto(f"/report?lat={lat}&lng={lon}&zoom={zoom}{extra}")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    page.wait_for_selector("#report-form[data-ready=true]")


def click_map_at(page, lon, lat):
    """A real mouse click where (lon, lat) is on the map."""
    point = page.evaluate(
        "([lat, lon]) => window.__map.latLngToContainerPoint([lat, lon])", [lat, lon]
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


def report_lonlat(page, reference):
    """Where the map draws a published report (its rounded location)."""
    found = page.evaluate(
        """ref => fetch(`/api/reports/${ref}`).then(r => r.json()).then(r => [r.lon, r.lat])""",
        reference,
    )
    return found[0], found[1]


def no_xss(page):
    assert page.evaluate("() => window.__xss") is None


@pytest.mark.browser
def test_report_from_the_map_with_a_photo(page, engine, runtime, artifacts, tmp_path):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_report_page(page, INSIDE["lon"], INSIDE["lat"])
    assert axe_violations(page, artifacts / "axe-report.json") == []
    page.select_option("#category", "flooding_road")
    page.check("#q-flooding_road-water_entering_property-no")
    click_map_at(page, INSIDE["lon"] + 0.0003, INSIDE["lat"])
    page.wait_for_selector("#report-form[data-located=inside]")
    assert "Place chosen" in page.locator("#location-status").inner_text()
    page.fill("#title", "Water across the road")
    page.fill("#description", "Deep water. Call me on 07700 900123 if needed.")
    photo = jpeg_with_gps((1600, 1200))
    page.set_input_files(
        "#photos", files=[{"name": "flood.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    page.click("#submit-report")
    # Contact details in the text: a warning first, and the report is not sent yet.
    warning = page.locator("#personal-warning")
    warning.wait_for()
    assert "a phone number" in warning.inner_text()
    assert page.url.endswith("zoom=18") or "/report" in page.url
    page.screenshot(path=str(artifacts / "report.png"))
    page.click("#submit-report")  # sent anyway, as the resident chose
    page.wait_for_url(re.compile(r"/reports/SMBC-\d{4}-\d{6}/confirmation\?token="), timeout=20_000)
    reference = page.locator("#reference").inner_text()
    assert axe_violations(page, artifacts / "axe-report-confirmation.json") == []
    page.screenshot(path=str(artifacts / "report-confirmation.png"))
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT r.category, r.answers, p.store_key FROM app.reports r"
                " JOIN app.report_photos p ON p.report_id = r.id WHERE r.reference = :ref"
            ),
            {"ref": reference},
        ).one()
    assert row.category == "flooding_road" and row.answers == {"water_entering_property": "no"}
    stored = (runtime.settings.photos_path / row.store_key).read_bytes()
    assert piexif.load(stored)["GPS"] == {} and not Image.open(io.BytesIO(stored)).getexif()
    # The public page, with the photo and the history, passes axe too.
    page.goto(f"/reports/{reference}")
    assert page.locator("#report-title").inner_text() == "Water across the road"
    assert page.locator(".app-photos img").count() == 1
    assert axe_violations(page, artifacts / "axe-report-public.json") == []
    assert not dialogs


@pytest.mark.browser
def test_report_an_asset_from_its_popup(page, streetlight):
    """As on Stockport's maps: click the street light, then "Report a fault with this"."""
    page.goto(f"/?lat={streetlight.lat}&lng={streetlight.lon}&zoom=19&layers=streetlights")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    page.wait_for_selector(
        ".leaflet-tile-loaded path, .leaflet-tile-container canvas", timeout=20_000
    )
    page.wait_for_timeout(500)  # the tile's features drawn
    click_map_at(page, streetlight.lon, streetlight.lat)
    page.get_by_role("link", name="Report a fault with this street light").click()
    page.wait_for_selector("#report-form[data-ready=true]", timeout=20_000)
    page.wait_for_function(
        "id => document.getElementById('asset_id').value === id", arg=streetlight.asset_id
    )
    assert page.locator("#category").input_value() == "streetlight"


@pytest.mark.browser
def test_report_an_asset(page, engine, streetlight):
    open_report_page(page, streetlight.lon, streetlight.lat, zoom=19)
    page.select_option("#category", "streetlight")
    # Click a few metres off the light: the pin snaps to it (or the click selects it).
    click_map_at(page, streetlight.lon + 0.00005, streetlight.lat)
    page.wait_for_function(
        "id => document.getElementById('asset_id').value === id", arg=streetlight.asset_id
    )
    assert streetlight.asset_id in page.locator("#asset-status").inner_text()
    page.check("#q-streetlight-fault-on_during_day")
    page.fill("#title", "Light on all day")
    idem = page.input_value("#idempotency_key")
    page.dblclick("#submit-report")  # a double click sends one report
    page.wait_for_url(re.compile(r"/confirmation\?token="), timeout=20_000)
    reference = page.locator("#reference").inner_text()
    with engine.connect() as conn:
        asset = conn.execute(
            text(
                "SELECT asset_layer, asset_id, (SELECT count(*) FROM app.reports"
                " WHERE idempotency_key = :k) AS made FROM app.reports WHERE reference = :r"
            ),
            {"r": reference, "k": idem},
        ).one()
    assert tuple(asset) == ("streetlights", streetlight.asset_id, 1)


@pytest.mark.browser
def test_without_the_map_search_or_my_location(browser, base_url):
    context = browser.new_context(
        base_url=base_url,
        geolocation={"latitude": INSIDE["lat"], "longitude": INSIDE["lon"]},
        permissions=["geolocation"],
    )
    page = context.new_page()
    open_report_page(page, INSIDE["lon"], INSIDE["lat"], zoom=14)
    page.fill("#search-input", "389500, 390200")  # eastings and northings
    page.press("#search-input", "Enter")
    page.wait_for_selector("#report-form[data-located=inside]")
    first = page.input_value("#lon")
    page.click("#use-location")
    page.wait_for_function(
        "lon => Math.abs(Number(document.getElementById('lon').value) - lon) < 1e-4",
        arg=INSIDE["lon"],
    )
    assert page.input_value("#lon") != first
    context.close()


@pytest.mark.browser
def test_is_this_it_and_me_too_and_hostile_text(page, client, scalar, artifacts):
    where = {"lon": INSIDE["lon"] - 0.004, "lat": INSIDE["lat"] + 0.002}
    made = client.post(
        "/api/reports",
        data=report_form(category="fly_tipping", title=XSS, description=XSS, **where),
        headers={"Idempotency-Key": key()},
    ).json()
    before = scalar("SELECT count(*) FROM app.reports")
    open_report_page(page, where["lon"], where["lat"])
    page.select_option("#category", "fly_tipping")
    click_map_at(page, where["lon"] + 0.0002, where["lat"])  # ~13 m away
    nearby = page.locator("#nearby-list")
    nearby.get_by_text(XSS).wait_for()  # the title shown as text, not run
    no_xss(page)
    page.screenshot(path=str(artifacts / "report-nearby.png"))
    page.fill("#metoo-email", "neighbour@example.org")
    nearby.get_by_role("button", name=re.compile("^Me too")).first.click()
    page.locator("#metoo-status").get_by_text(made["reference"]).wait_for()
    assert (
        scalar("SELECT interest_count FROM app.reports WHERE reference = :r", r=made["reference"])
        == 1
    )
    assert scalar("SELECT count(*) FROM app.reports") == before  # no duplicate made
    # On the map, the published report's popup shows the title as text too.
    page.wait_for_selector("path.layer-reports_public")
    click_map_at(page, *report_lonlat(page, made["reference"]))
    popup = page.locator(".leaflet-popup-content")
    popup.get_by_text(XSS).first.wait_for()
    assert popup.get_by_role("link", name="View this report").count() == 1
    no_xss(page)
    page.goto(f"/reports/{made['reference']}")
    assert page.locator("#report-title").inner_text() == XSS
    no_xss(page)


@pytest.mark.browser
def test_outside_the_borough(page):
    open_report_page(page, OUTSIDE["lon"], OUTSIDE["lat"], zoom=15)
    page.select_option("#category", "pothole")
    click_map_at(page, OUTSIDE["lon"], OUTSIDE["lat"])
    page.wait_for_selector("#report-form[data-located=outside]")
    status = page.locator("#location-status").inner_text()
    assert "outside Stockport" in status and "Manchester" in status
    page.fill("#title", "Pothole")
    page.click("#submit-report")
    assert "Manchester" in page.locator("#error-summary").inner_text()
    assert "/report" in page.url and "/confirmation" not in page.url


@pytest.mark.browser
def test_staff_fix_then_reporter_reopens(browser, base_url, client, artifacts, staff_http):
    made = client.post(
        "/api/reports", data=report_form(title="Fix me"), headers={"Idempotency-Key": key()}
    ).json()
    ref = made["reference"]
    staff = browser.new_context(base_url=base_url)
    page = staff.new_page()
    page.goto(f"/login?next=/reports/{ref}")
    page.fill("#email", "reports-staff@example.gov.uk")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/reports/{ref}")
    page.select_option("#state", "fixed")
    page.fill("#note", "Repaired <b>today</b>.")
    page.click("text=Change status")
    page.wait_for_url(f"**/reports/{ref}#history")
    assert "Fixed" in page.locator("#report-state").inner_text()
    assert "Repaired <b>today</b>." in page.locator(".app-updates").inner_text()
    assert axe_violations(page, artifacts / "axe-report-staff.json") == []
    staff.close()
    resident = browser.new_context(base_url=base_url)
    page = resident.new_page()
    page.goto(f"/reports/{ref}?token={made['token']}")
    page.fill("#body", "It is broken again.")
    page.click("text=Reopen: it is not fixed")
    page.wait_for_url(f"**/reports/{ref}?token=*")
    assert "Open" in page.locator("#report-state").inner_text()
    history = page.locator("#history + table").inner_text()
    assert history.count("Open") == 2 and "Fixed" in history
    page.screenshot(path=str(artifacts / "report-reporter.png"), full_page=True)
    assert axe_violations(page, artifacts / "axe-report-reporter.json") == []
    page.goto("/reports/SMBC-1999-000000")
    assert axe_violations(page, artifacts / "axe-report-missing.json") == []
    resident.close()
