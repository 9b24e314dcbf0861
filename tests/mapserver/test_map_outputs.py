"""The map page's outputs in a real browser: PNG and PDF of the view, the attribute table
(filter, sort, select, download) and the planning applications filter."""

import base64
import csv
import io
import json
import re
import sqlite3
import struct
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from mapserver.sessions import create_user
from tests.browser import axe_violations, sign_in

ITEMS = "/items?"
PASSWORD = "correct horse battery staple"


def open_map(page, query: str = "") -> None:
    page.goto(f"/{query}")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)


def open_panel(page, summary: str) -> None:
    page.locator("summary", has_text=summary).click()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def distinct_colours(page, data: bytes) -> int:
    """Decode the PNG in the browser and count the distinct colours of a grid of samples."""
    return page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
            const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
            const ctx = canvas.getContext("2d");
            ctx.drawImage(bitmap, 0, 0);
            const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
            const seen = new Set();
            for (let y = 0; y < bitmap.height; y += 7)
              for (let x = 0; x < bitmap.width; x += 7) {
                const i = (y * bitmap.width + x) * 4;
                seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
              }
            return seen.size;
        }""",
        base64.b64encode(data).decode(),
    )


@pytest.mark.browser
def test_view_exports_to_png_and_pdf(page, artifacts):
    open_map(page)
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    open_panel(page, "Print or save this view")
    page.get_by_label("Map title").fill("Libraries test")
    box = page.locator("#map").bounding_box()

    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download PNG").click()
    png = artifacts / "map-export.png"
    download.value.save_as(png)
    data = png.read_bytes()
    width, height = png_size(data)
    assert width == round(box["width"] * 2)  # two output pixels per CSS pixel
    assert height > box["height"] * 2  # the title, key and attribution around the map
    assert len(data) > 20_000
    assert distinct_colours(page, data) > 20  # a map, not a blank sheet
    assert "downloaded" in page.locator("#print-status").inner_text()

    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download PDF").click()
    pdf = artifacts / "map-export.pdf"
    download.value.save_as(pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b(?!s)", data)) == 1
    assert b"(Stockport map: Libraries test) Tj" in data
    assert b"/Subtype /Image" in data and len(data) > 20_000


def _items(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.browser
def test_attribute_table_filter_sort_select_and_download(page, client, tmp_path):
    open_map(page, "?layers=polling_stations")
    page.wait_for_selector("path.layer-polling_stations", timeout=20_000)
    open_panel(page, "Attribute table")
    table = page.locator("#attribute-table")
    table.wait_for()
    assert page.get_by_label("Layer", exact=True).input_value() == "polling_stations"
    headers = table.locator("thead th").all_inner_texts()[1:]
    assert headers[:3] == ["Station number", "Name", "Address"]  # the catalogue's labels

    # A filter built from the form gives exactly the rows of the same /ogc query.
    page.get_by_label("Field").select_option(label="Name")
    page.get_by_label("Condition").select_option(label="contains")
    page.get_by_label("Value").fill("church")
    with page.expect_response(lambda r: ITEMS in r.url and "filter=" in r.url) as response:
        page.get_by_role("button", name="Add filter").click()
    query = parse_qs(urlsplit(response.value.url).query)
    assert query["filter"] == ["CASEI(name) LIKE CASEI('%church%')"]
    bbox = query["bbox"][0]
    page.wait_for_function("() => document.getElementById('table-container').dataset.rows")
    expected = _items(
        client,
        f"/ogc/collections/polling_stations/items?f=json&limit=1000&bbox={bbox}"
        "&filter=CASEI(name) LIKE CASEI('%church%')",
    )
    rows = table.locator("tbody tr")
    ids = {str(f["id"]) for f in expected["features"]}
    assert 1 < len(ids) < 200
    page.wait_for_function(
        "n => document.querySelectorAll('#attribute-table tbody tr').length === n", arg=len(ids)
    )
    assert {rows.nth(i).get_attribute("data-feature-id") for i in range(rows.count())} == ids

    # Sorting by a header: the API's order, ascending then descending.
    header = table.locator("th", has=page.get_by_role("button", name="Station number"))
    for direction, prefix in (("ascending", ""), ("descending", "-")):
        page.get_by_role("button", name="Station number").click()
        page.wait_for_selector(f"#attribute-table th[aria-sort={direction}]")
        assert header.get_attribute("aria-sort") == direction
        ordered = _items(
            client,
            f"/ogc/collections/polling_stations/items?f=json&limit=1000&bbox={bbox}"
            f"&filter=CASEI(name) LIKE CASEI('%church%')&sortby={prefix}station_id",
        )
        page.wait_for_function(
            "id => document.querySelector('#attribute-table tbody tr').dataset.featureId === id",
            arg=str(ordered["features"][0]["id"]),
        )
        shown = [rows.nth(i).get_attribute("data-feature-id") for i in range(rows.count())]
        assert shown == [str(f["id"]) for f in ordered["features"]]

    # Selecting rows highlights their features on the map.
    boxes = table.locator("tbody input[type=checkbox]")
    boxes.nth(0).check()
    page.wait_for_function("() => document.querySelectorAll('path.app-highlight').length === 1")
    boxes.nth(1).check()
    page.wait_for_function("() => document.querySelectorAll('path.app-highlight').length === 2")
    boxes.nth(0).uncheck()
    page.wait_for_function("() => document.querySelectorAll('path.app-highlight').length === 1")

    # The downloads hold the same features as the table.
    for label, fmt in (("GeoJSON", "geojson"), ("CSV", "csv"), ("GeoPackage", "gpkg")):
        with page.expect_download() as download:
            page.get_by_role("link", name=f"Download {label}").click()
        path = tmp_path / f"table.{fmt}"
        download.value.save_as(path)
        if fmt == "geojson":
            count = len(json.loads(path.read_text())["features"])
        elif fmt == "csv":
            count = len(list(csv.DictReader(io.StringIO(path.read_text()))))
        else:
            with sqlite3.connect(path) as db:
                count = db.execute("SELECT count(*) FROM export").fetchone()[0]
        assert count == len(ids), fmt

    # Quotes in a value are data, never filter syntax.
    page.get_by_label("Value").fill("O'Brien') OR (1=1")
    with page.expect_response(lambda r: ITEMS in r.url and "Brien" in r.url) as response:
        page.get_by_role("button", name="Add filter").click()
    assert response.value.status == 200
    page.wait_for_function("() => document.getElementById('table-container').dataset.rows === '0'")


@pytest.mark.browser
def test_attribute_table_pages_through_every_feature(page, client, artifacts):
    layer = "greenspace_access_points"
    open_map(page, f"?layers={layer}")
    open_panel(page, "Attribute table")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if ITEMS in r.url and layer in r.url else None)
    page.get_by_label("Layer", exact=True).select_option(layer)
    # The open panel narrows the map, and the table asks again for the narrower view 250 ms
    # after the map moved: the bbox is that of its last question once it stops asking.
    seen = -1
    while seen != len(asked):
        seen = len(asked)
        page.wait_for_timeout(700)
    bbox = parse_qs(urlsplit(asked[-1]).query)["bbox"][0]
    query = f"/ogc/collections/{layer}/items?f=json&bbox={bbox}&limit=200"
    total = _items(client, f"/ogc/collections/{layer}/items?f=json&bbox={bbox}&resulttype=hits")[
        "numberMatched"
    ]
    assert total > 400
    status = page.locator("#table-status")
    rows = page.locator("#attribute-table tbody tr")

    def shown() -> list[str]:
        return [rows.nth(i).get_attribute("data-feature-id") for i in range(rows.count())]

    def expected(offset: int) -> list[str]:
        return [str(f["id"]) for f in _items(client, f"{query}&offset={offset}")["features"]]

    page.wait_for_function("() => document.getElementById('table-container').dataset.rows")
    expect(status).to_have_text(f"Features 1 to 200 of {total:,} in this view.")  # waits
    assert shown() == expected(0)
    pages = page.get_by_role("navigation", name="Pages of the attribute table")
    assert pages.get_by_role("button", name="Previous page of features").count() == 0
    pages.get_by_role("button", name="Next page of features").click()
    page.wait_for_function(
        "() => document.getElementById('table-container').dataset.offset === '200'"
    )
    assert status.inner_text() == f"Features 201 to 400 of {total:,} in this view."
    assert shown() == expected(200)
    assert page.evaluate("() => document.activeElement.dataset.direction") == "next"
    page.screenshot(path=str(artifacts / "map-table-page-2.png"))
    pages.get_by_role("button", name="Previous page of features").click()
    page.wait_for_function(
        "() => document.getElementById('table-container').dataset.offset === '0'"
    )
    assert shown() == expected(0)

    # The last page has no next one.
    last = (total - 1) // 200 * 200
    for _ in range(last // 200):
        with page.expect_response(lambda r: ITEMS in r.url and "offset=" in r.url):
            pages.get_by_role("button", name="Next page of features").click()
    page.wait_for_function(
        "n => document.getElementById('table-container').dataset.offset === n", arg=str(last)
    )
    assert shown() == expected(last)
    assert pages.get_by_role("button", name="Next page of features").count() == 0
    assert status.inner_text() == f"Features {last + 1:,} to {total:,} of {total:,} in this view."


@pytest.mark.browser
def test_planning_filter_restricts_the_map(page, client, scalar, artifacts):
    open_map(page, "?layers=planning_applications")
    page.wait_for_selector("path.layer-planning_applications", state="attached", timeout=20_000)
    open_panel(page, "Filter planning applications")
    page.get_by_label("Refused").check()
    page.get_by_role("textbox", name="From", exact=True).fill("2024-01-01")
    page.get_by_role("textbox", name="To", exact=True).fill("2024-12-31")
    with page.expect_response(lambda r: ITEMS in r.url and "filter=" in r.url) as response:
        page.get_by_role("button", name="Apply filter").click()
    query = parse_qs(urlsplit(response.value.url).query)
    cql = (
        "status IN ('Refused') AND received_date >= DATE('2024-01-01')"
        " AND received_date <= DATE('2024-12-31')"
    )
    assert query["filter"] == [cql.replace(" AND ", ") AND (").join("()")]
    expected = _items(
        client,
        f"/ogc/collections/planning_applications/items?f=json&resulttype=hits"
        f"&bbox={query['bbox'][0]}&filter={cql}",
    )["numberMatched"]
    in_borough = scalar(
        "SELECT count(*) FROM layers.planning_applications WHERE status = 'Refused'"
        " AND received_date BETWEEN '2024-01-01' AND '2024-12-31'"
    )
    assert 0 < expected <= in_borough
    page.wait_for_function(
        "n => document.querySelectorAll('path.layer-planning_applications').length === n",
        arg=expected,
        timeout=20_000,
    )
    assert "Refused" in page.locator("#planning-filter-status").inner_text()
    page.screenshot(path=str(artifacts / "map-planning-filter.png"))

    # Clearing the form shows every application again.
    with page.expect_response(lambda r: ITEMS in r.url and "planning" in r.url) as response:
        page.get_by_role("button", name="Clear").click()
    assert "filter=" not in response.value.url
    page.wait_for_function(
        "n => document.querySelectorAll('path.layer-planning_applications').length > n",
        arg=expected,
        timeout=20_000,
    )


@pytest.mark.browser
def test_outputs_have_no_accessibility_violations(page, artifacts):
    open_map(page)
    for summary in ("Filter planning applications", "Print or save this view", "Attribute table"):
        open_panel(page, summary)
    page.locator("#attribute-table tbody tr").first.wait_for(timeout=20_000)
    page.get_by_role("button", name="Name").click()
    page.wait_for_selector("#attribute-table th[aria-sort=ascending]")
    page.screenshot(path=str(artifacts / "map-outputs.png"))
    assert axe_violations(page, artifacts / "axe-map-outputs.json") == []


@pytest.mark.browser
def test_outputs_work_on_a_phone(browser, base_url, artifacts):
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=base_url)
    try:
        page = context.new_page()
        open_map(page)
        map_box = page.locator("#map").bounding_box()
        assert map_box["width"] >= 380 and map_box["height"] >= 300
        open_panel(page, "Attribute table")
        page.locator("#attribute-table tbody tr").first.wait_for(timeout=20_000)
        summary = page.locator("summary", has_text="Attribute table").bounding_box()
        assert summary["y"] > map_box["y"] + map_box["height"] - 1  # below the map
        page.screenshot(path=str(artifacts / "map-outputs-phone.png"))
    finally:
        context.close()


@pytest.mark.browser
def test_restricted_fields_only_for_signed_in_staff(page, engine):
    view = "?lat=53.40800&lng=-2.15750&zoom=17&layers=land_ownership"

    def headers() -> list[str]:
        open_map(page, view)
        open_panel(page, "Attribute table")
        page.locator("#attribute-table tbody tr").first.wait_for(timeout=20_000)
        return page.locator("#attribute-table thead th").all_inner_texts()[1:]

    public = headers()
    assert "Tenure" in public and "Proprietor" not in public
    create_user(engine, "table.planner@example.gov.uk", "A Planner", "staff", PASSWORD)
    sign_in(page, "table.planner@example.gov.uk", PASSWORD)
    assert "Proprietor" in headers()
