"""The map on a phone (390×844, touch) and with reduced motion, in a real browser."""

from collections.abc import Iterator
from itertools import combinations

import pytest

from tests.browser import axe_violations, browser_page

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}

# Records whether Leaflet ever animates: the classes it sets on its pane while a zoom or a
# pan runs.
WATCH_MOTION = """() => {
  window.__motion = [];
  const pane = document.querySelector('#map .leaflet-map-pane');
  new MutationObserver(() => {
    for (const name of ['leaflet-zoom-anim', 'leaflet-pan-anim'])
      if (pane.classList.contains(name)) window.__motion.push(name);
  }).observe(pane, { attributes: true, attributeFilter: ['class'] });
}"""


@pytest.fixture
def phone(browser, base_url) -> Iterator:  # noqa: ANN001
    yield from browser_page(browser, base_url, **PHONE)


def open_map(page, query: str = "") -> None:  # noqa: ANN001
    page.goto(f"/{query}")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


@pytest.mark.browser
def test_layer_switcher_folds_away_on_a_phone(phone, artifacts):
    open_map(phone)
    toggle = phone.get_by_role("button", name="Show map layers")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert toggle.get_attribute("aria-controls") == "layer-switcher"
    polling = phone.get_by_label("Polling stations", exact=True)
    assert polling.is_hidden()
    phone.screenshot(path=str(artifacts / "phone-map.png"))
    assert axe_violations(phone, artifacts / "axe-phone-map.json") == []

    toggle.tap()
    toggle = phone.get_by_role("button", name="Hide map layers")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert polling.is_visible()
    phone.locator("label[for=layer-polling_stations]").tap()
    phone.wait_for_selector("path.layer-polling_stations", state="attached", timeout=20_000)
    phone.screenshot(path=str(artifacts / "phone-layers-open.png"))
    assert axe_violations(phone, artifacts / "axe-phone-layers.json") == []
    toggle.tap()
    assert polling.is_hidden()
    assert phone.get_by_role("button", name="Show map layers").is_visible()


@pytest.mark.browser
def test_tap_on_a_feature_shows_its_popup(phone, artifacts):
    open_map(phone, "?layers=libraries")
    library = phone.locator("path.layer-libraries").first
    library.wait_for(timeout=20_000)
    library.tap(force=True)
    popup = phone.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Libraries" in popup.inner_text()
    # The map pans so that the whole popup is on the screen.
    phone.wait_for_function(
        """() => {
          const map = document.getElementById('map').getBoundingClientRect();
          const box = document.querySelector('.leaflet-popup').getBoundingClientRect();
          return box.left >= map.left && box.right <= map.right && box.top >= map.top;
        }"""
    )
    phone.screenshot(path=str(artifacts / "phone-popup.png"))


@pytest.mark.browser
def test_search_on_a_phone(phone, client, artifacts):
    first = client.get("/api/search", params={"q": "Bramhall", "limit": 8}).json()["results"][0]
    open_map(phone)
    box = phone.get_by_role("combobox", name="Search for a place")
    box.tap()
    box.press_sequentially("Bramhall", delay=20)
    option = phone.get_by_role("option").first
    option.wait_for()
    assert option.is_visible()
    option.tap()
    phone.wait_for_function(
        "label => document.getElementById('map').dataset.searchResult === label",
        arg=first["label"],
    )
    assert phone.get_by_role("option").count() == 0 or phone.get_by_role("listbox").is_hidden()
    phone.screenshot(path=str(artifacts / "phone-search.png"))


@pytest.mark.browser
def test_no_control_overlaps_another_on_a_phone(phone):
    open_map(phone)
    # The tools' panel shows a message (it is empty and borderless otherwise).
    phone.get_by_role("button", name="Measure distance or area").tap()
    phone.wait_for_function("() => document.getElementById('map-tools-status').textContent")
    controls = phone.locator(".leaflet-control:visible")
    boxes = [controls.nth(i).bounding_box() for i in range(controls.count())]
    boxes = [b for b in boxes if b and b["width"] and b["height"]]
    assert len(boxes) >= 5  # zoom, tools, tool panel, scale, attribution
    map_box = phone.locator("#map").bounding_box()
    for box in boxes:
        assert box["x"] >= map_box["x"] - 0.5
        assert box["x"] + box["width"] <= map_box["x"] + map_box["width"] + 0.5
    for a, b in combinations(boxes, 2):
        assert not overlap(a, b), (a, b)
    # Every control is big enough to tap (WCAG 2.2 target size: 24 px).
    buttons = phone.locator(".leaflet-control a:visible, .leaflet-control button:visible")
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, buttons.nth(i).inner_html()


@pytest.mark.browser
def test_reduced_motion_means_no_animated_zoom_or_pan(browser, base_url, artifacts):
    # With motion allowed, the watcher sees Leaflet animate (so its silence below means it).
    for page in browser_page(browser, base_url, viewport={"width": 1280, "height": 800}):
        open_map(page)
        page.evaluate(WATCH_MOTION)
        page.get_by_role("button", name="Zoom in", exact=True).click()
        page.wait_for_function("() => window.__motion.length > 0")

    for page in browser_page(browser, base_url, reduced_motion="reduce", **PHONE):
        open_map(page, "?layers=greenspace_access_points")
        page.wait_for_selector(".app-cluster-greenspace_access_points", timeout=20_000)
        page.evaluate(WATCH_MOTION)
        zoom = page.evaluate("() => window.__map.getZoom()")
        page.get_by_role("button", name="Zoom in", exact=True).tap()
        page.wait_for_function("z => window.__map.getZoom() === z + 1", arg=zoom)
        page.locator("#map").focus()
        page.keyboard.press("ArrowRight")  # a keyboard pan
        page.keyboard.press("ArrowDown")
        page.locator(".app-cluster-greenspace_access_points").first.tap()  # zooms to it
        page.wait_for_function("z => window.__map.getZoom() > z + 1", arg=zoom)
        box = page.get_by_role("combobox", name="Search for a place")
        box.fill("SJ 89 90")
        box.press("Enter")  # a jump across the borough
        page.wait_for_selector("#map[data-search-result]")
        page.wait_for_timeout(500)
        assert page.evaluate("() => window.__motion") == []
        page.screenshot(path=str(artifacts / "phone-reduced-motion.png"))
