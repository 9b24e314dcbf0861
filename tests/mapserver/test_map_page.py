"""The map page in a real browser: Debian's chromium driven by Playwright."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from mapserver.tiles import MVT
from tests.browser import axe_violations


@pytest.mark.browser
def test_map_draws_boundary_and_layer_switcher(page, runtime, scalar, artifacts):
    page.goto("/")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
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
def test_popup_shows_catalogue_labels(page, artifacts):
    page.goto("/")
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    page.locator("path.layer-libraries").first.click(force=True)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Libraries" in popup.inner_text()
    assert "Postcode" in popup.inner_text()
    page.screenshot(path=str(artifacts / "map-popup.png"))


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/login", "/connect"])
def test_pages_have_no_accessibility_violations(page, artifacts, path):
    page.goto(path)
    if path == "/":
        page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    name = path.strip("/") or "map"
    assert axe_violations(page, artifacts / f"axe-{name}.json") == []


@pytest.mark.browser
def test_url_holds_the_view_and_layers(page):
    page.goto("/?lat=53.40800&lng=-2.15750&zoom=15&layers=pharmacies")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    page.wait_for_function("() => new URLSearchParams(location.search).get('zoom') === '15'")
    assert page.get_by_label("Pharmacies", exact=True).is_checked()
    assert not page.get_by_label("Libraries", exact=True).is_checked()
    centre = page.evaluate("() => new URLSearchParams(location.search).get('lat')")
    assert abs(float(centre) - 53.408) < 0.001
    page.get_by_label("Polling stations", exact=True).check()
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('layers').includes('polling_stations')"
    )
    page.go_back()
    page.wait_for_function(
        "() => !document.getElementById('layer-polling_stations').checked", timeout=5_000
    )
    assert page.get_by_label("Pharmacies", exact=True).is_checked()


@pytest.mark.browser
def test_large_layer_is_drawn_from_vector_tiles(page, runtime, artifacts):
    layer = runtime.catalogue.layers["land_ownership"]
    assert layer.large
    tiles: list = []
    page.on("response", lambda r: tiles.append(r) if "/tiles/WebMercatorQuad/" in r.url else None)
    page.goto("/")
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
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
    # Some parcel drawn on the screen (tiles of a zoom level just left may linger unseen).
    page.wait_for_function(
        "() => [...document.querySelectorAll('path.layer-land_ownership')]"
        ".some((p) => p.getBoundingClientRect().width > 0)",
        timeout=20_000,
    )
    assert tiles and {r.status for r in tiles} <= {200, 204}
    assert all(r.headers["content-type"] == MVT for r in tiles if r.status == 200)

    # A parcel's popup shows the catalogue's labels of the public fields, and no other.
    # Clicked where the parcel itself is the topmost element (not a tile of the zoom level
    # just left, still fading out), again a moment later if the tiles were still settling.
    # The newest popup: one opened late by an earlier click may still be fading out.
    popup = page.locator(".leaflet-popup-content").last
    for _ in range(5):
        spot = page.evaluate(
            """() => {
              const map = document.getElementById('map').getBoundingClientRect();
              for (const p of document.querySelectorAll('path.layer-land_ownership')) {
                const r = p.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                if (r.width > 4 && r.height > 4 && r.left >= map.left && r.right <= map.right
                    && r.top >= map.top && r.bottom <= map.bottom
                    && document.elementFromPoint(x, y) === p) return [x, y];
              }
              return null;
            }"""
        )
        if spot is not None:
            page.mouse.click(*spot)
            try:
                popup.wait_for(timeout=1_500)
                break
            except PlaywrightTimeout:
                pass
        page.wait_for_timeout(500)
    popup.wait_for(timeout=5_000)
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


@pytest.mark.browser
def test_click_outside_names_the_neighbour(page, artifacts):
    page.goto("/?lat=53.48080&lng=-2.24260&zoom=13")  # Manchester city centre, outside
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    box = page.locator("#map").bounding_box()
    # Click the middle of the map: Manchester, through the shaded mask.
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    message = page.locator(".app-outside")
    message.wait_for(timeout=10_000)
    assert "outside Stockport" in message.inner_text() and "Manchester" in message.inner_text()
    page.screenshot(path=str(artifacts / "map-outside.png"))


@pytest.mark.browser
def test_overlapping_features_offer_a_choice(page, artifacts):
    page.goto("/?lat=53.40800&lng=-2.15750&zoom=14&layers=wards,lsoas")
    page.wait_for_selector("path.layer-wards", timeout=20_000)
    page.wait_for_selector("path.layer-lsoas", timeout=20_000)
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    choices = page.locator(".app-popup__choices button")
    choices.first.wait_for(timeout=10_000)
    labels = choices.all_inner_texts()
    assert any(t.startswith("Electoral wards:") for t in labels)
    assert any(t.startswith("Lower layer super output areas:") for t in labels)
    page.screenshot(path=str(artifacts / "map-choice.png"))
    choices.first.click()
    page.locator(".app-popup dl").wait_for()


@pytest.mark.browser
def test_layer_details_opacity_and_links(page):
    page.goto("/?layers=libraries")
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    item = page.locator('[data-layer-id="libraries"]')
    assert "Updated" in item.locator(".app-updated").inner_text()
    item.get_by_label("Opacity of Libraries").fill("0.5")
    assert page.evaluate("() => window.__map.getPane('layer-libraries').style.opacity") == "0.5"
    page.locator("path.layer-libraries").first.click(force=True)
    link = page.locator(".leaflet-popup-content a.govuk-link").first
    link.wait_for()
    assert link.get_attribute("href").startswith("https://www.stockport.gov.uk")


@pytest.mark.browser
def test_staff_see_their_layers(page, engine, base_url):
    from mapserver.sessions import create_user

    create_user(engine, "mapper@example.gov.uk", "Mapper", "staff", "a long enough password")
    page.goto("/login")
    page.get_by_label("Email address").fill("mapper@example.gov.uk")
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    assert page.get_by_label("Road casualties", exact=True).count() == 1


CLUSTER_COUNTS = """id => {
  const clusters = [...document.querySelectorAll(`.app-cluster-${id} [aria-hidden=true]`)];
  return {
    clusters: clusters.length,
    inClusters: clusters.reduce((sum, c) => sum + Number(c.textContent), 0),
    single: document.querySelectorAll(`path.layer-${id}`).length,
    count: Number(document.querySelector(`[data-layer-id=${id}]`).dataset.count),
  };
}"""


@pytest.mark.browser
def test_dense_points_are_clustered(page, artifacts):
    layer = "greenspace_access_points"  # 1,203 points: clustered in the borough's view
    page.goto(f"/?layers={layer}")
    page.wait_for_selector(f".app-cluster-{layer}", timeout=20_000)
    counts = page.evaluate(CLUSTER_COUNTS, layer)
    assert counts["clusters"] > 1 and counts["count"] > 150
    assert counts["inClusters"] + counts["single"] == counts["count"]  # every point, once
    clusters = page.get_by_role("button", name=re.compile(r"^\d+ green space access points"))
    assert clusters.count() == counts["clusters"]
    assert clusters.first.get_attribute("tabindex") == "0"
    page.screenshot(path=str(artifacts / "map-clusters.png"))
    assert axe_violations(page, artifacts / "axe-map-clusters.json") == []

    # Enter on a cluster zooms in, and says so.
    zoom = page.evaluate("() => window.__map.getZoom()")
    size = int(clusters.first.locator("[aria-hidden=true]").inner_text())
    clusters.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("z => window.__map.getZoom() > z", arg=zoom)
    assert (
        page.locator("#map-status").inner_text()
        == f"Zoomed in to {size} green space access points."
    )
    # A click does too (from the borough's view again: fewer points here are not clustered).
    page.goto(f"/?layers={layer}")
    page.wait_for_selector(f".app-cluster-{layer}", timeout=20_000)
    zoom = page.evaluate("() => window.__map.getZoom()")
    page.locator(f".app-cluster-{layer}").first.click()
    page.wait_for_function("z => window.__map.getZoom() > z", arg=zoom)


@pytest.mark.browser
def test_planning_filter_applies_to_vector_tiles(page, runtime, client):
    layers = runtime.catalogue.layers
    original = layers["planning_applications"]
    layers["planning_applications"] = original.model_copy(update={"large": True})
    try:
        refused = client.get(
            "/ogc/collections/planning_applications/items",
            params={"f": "json", "limit": 1, "filter": "status = 'Refused'"},
        ).json()["features"][0]
        ring = refused["geometry"]["coordinates"][0][0]
        lon = sum(p[0] for p in ring) / len(ring)
        lat = sum(p[1] for p in ring) / len(ring)
        tiles: list[str] = []
        page.on(
            "request", lambda r: tiles.append(r.url) if "/tiles/WebMercatorQuad/" in r.url else None
        )
        page.goto(f"/?lat={lat:.5f}&lng={lon:.5f}&zoom=16&layers=planning_applications")
        page.wait_for_selector("path.layer-planning_applications", timeout=20_000)
        assert tiles and not any("filter=" in url for url in tiles)
        page.locator("summary", has_text="Filter planning applications").click()
        page.get_by_label("Refused").check()
        tiles.clear()
        page.get_by_role("button", name="Apply filter").click()
        page.wait_for_function("() => document.querySelector('path.layer-planning_applications')")
        page.wait_for_load_state("networkidle")
        filters = [parse_qs(urlsplit(url).query).get("filter") for url in tiles]
        assert filters and all(f == ["status IN ('Refused')"] for f in filters), tiles
        # A click on a drawn application (on its outline: inside may be another's) shows it.
        x, y = page.evaluate(
            """() => {
              const path = document.querySelector('path.layer-planning_applications');
              const p = path.getPointAtLength(0).matrixTransform(path.getScreenCTM());
              return [p.x, p.y];
            }"""
        )
        page.mouse.click(x, y)
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for()
        assert popup.locator("h2").inner_text() == original.title
        assert "Refused" in popup.locator("dd").all_inner_texts()
    finally:
        layers["planning_applications"] = original


@pytest.mark.browser
def test_map_core_makes_a_map_anywhere_and_takes_popup_sections(page):
    """The core's public functions, as another page (residents' reports) uses them."""
    page.goto("/?layers=libraries")
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    drawn = page.evaluate(
        """async () => {
          const core = await import('/static/js/map.js');
          const element = document.createElement('div');
          element.style.height = '300px';
          document.body.append(element);
          const messages = [];
          const { map, ready } = core.createMap(element, core.readConfig(), {
            view: [53.408, -2.1575, 15], onStatus: (text) => messages.push(text) });
          const boundary = await ready;
          core.addPopupSection((layer, feature) => {
            const link = document.createElement('a');
            link.className = 'app-report-link';
            link.href = `/report?layer=${layer.id}&id=${feature.id}`;
            link.textContent = `Report this ${layer.title}`;
            return layer.id === 'libraries' ? link : null;
          });
          return { boundary: Boolean(boundary), zoom: map.getZoom(), messages,
                   outline: element.querySelectorAll('path.layer-boundary').length,
                   basemap: element.dataset.basemap };
        }"""
    )
    assert drawn == {
        "boundary": True,
        "zoom": 15,
        "messages": [],
        "outline": 1,
        "basemap": "builtin",
    }
    page.locator("#map path.layer-libraries").first.click(force=True)
    link = page.locator(".leaflet-popup-content a.app-report-link")
    link.wait_for()
    assert link.get_attribute("href").startswith("/report?layer=libraries&id=")
