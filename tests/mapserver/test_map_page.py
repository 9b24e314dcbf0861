"""The map page in a real browser: Debian's chromium driven by Playwright."""

import json

import pytest
from playwright.sync_api import sync_playwright

from mapserver.pages import FRONTEND_DIR
from mapserver.tiles import MVT

CHROMIUM = "/usr/bin/chromium"
# As root, and on a machine with no network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE = FRONTEND_DIR / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


@pytest.mark.browser
def test_map_draws_boundary_and_layer_switcher(page, runtime, scalar, artifacts):
    page.goto("/")
    page.wait_for_selector("#map[data-boundary=drawn]", timeout=20_000)
    assert page.locator(".leaflet-boundary-pane path.layer-boundary").count() >= 1

    switchable = [
        layer
        for layer in runtime.catalogue.public_layers
        if layer.id != runtime.catalogue.council.boundary_layer
    ]
    boxes = page.locator("#layer-switcher input[type=checkbox]")
    assert boxes.count() == len(switchable)
    for layer in switchable:
        name = f"{layer.title} Synthetic" if layer.synthetic else layer.title
        assert page.get_by_label(name, exact=True).is_checked() == layer.visible

    # Switching a layer on draws every feature in view (the whole borough is in view).
    page.get_by_label("Polling stations", exact=True).check()
    expected = scalar("SELECT count(*) FROM layers.polling_stations")
    page.wait_for_function(
        "n => document.querySelectorAll('path.layer-polling_stations').length === n",
        arg=expected,
        timeout=20_000,
    )
    page.get_by_label("Polling stations", exact=True).uncheck()
    page.wait_for_function("() => !document.querySelector('path.layer-polling_stations')")
    page.screenshot(path=str(artifacts / "map.png"))


@pytest.mark.browser
def test_popup_shows_catalogue_labels(page):
    page.goto("/")
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    page.locator("path.layer-libraries").first.click(force=True)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Libraries" in popup.inner_text()
    assert "Postcode" in popup.inner_text()


@pytest.mark.browser
def test_map_page_has_no_accessibility_violations(page, artifacts):
    page.goto("/")
    page.wait_for_selector("#map[data-boundary=drawn]", timeout=20_000)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: tags})", WCAG_TAGS)
    violations = [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in result["violations"]
    ]
    (artifacts / "axe-map.json").write_text(json.dumps(result["violations"], indent=2))
    assert violations == []


@pytest.mark.browser
def test_large_layer_is_drawn_from_vector_tiles(page, runtime, artifacts):
    layer = runtime.catalogue.layers["land_ownership"]
    assert layer.large
    tiles: list = []
    page.on("response", lambda r: tiles.append(r) if "/tiles/WebMercatorQuad/" in r.url else None)
    page.goto("/")
    page.wait_for_selector("#map[data-boundary=drawn]", timeout=20_000)
    for other in ("Libraries", "Rivers and canals"):  # nothing drawn over the parcels
        page.get_by_label(other, exact=True).uncheck()
    page.get_by_label(f"{layer.title} Synthetic", exact=True).check()
    status = page.locator("#map-status")
    page.wait_for_function(
        "() => document.getElementById('map-status').textContent.includes('zoom in to see')"
    )
    for _ in range(8):
        if f"{layer.title}: shown" in status.inner_text():
            break
        page.get_by_role("button", name="Zoom in").click()
        page.wait_for_timeout(300)
    page.wait_for_selector("path.layer-land_ownership", timeout=20_000)
    assert tiles and {r.status for r in tiles} <= {200, 204}
    assert all(r.headers["content-type"] == MVT for r in tiles if r.status == 200)

    # A parcel's popup shows the catalogue's labels of the public fields, and no other.
    page.locator("path.layer-land_ownership").nth(5).click(force=True)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert popup.locator("h2").inner_text() == layer.title
    labels = set(popup.locator("dt").all_inner_texts())
    assert labels == {f.label for f in layer.public_fields}
    page.screenshot(path=str(artifacts / "map-tiles.png"))

    # The layer's minimum zoom is its own, not the map's: zooming out still works.
    for _ in range(4):
        page.get_by_role("button", name="Zoom out").click()
        page.wait_for_timeout(400)
        if "zoom in to see" in status.inner_text():
            break
    assert f"{layer.title}: zoom in to see" in status.inner_text()
