"""The map's tools in a real browser: search (a combobox), locate me, full screen, measure,
and the base map (built from our own layers when no tile service is configured or reachable)."""

import re

import pytest
from pyproj import Geod, Transformer

from mapserver.security import policies
from mapserver.settings import Settings
from tests.browser import axe_violations

GEOD = Geod(ellps="WGS84")
BNG_TO_LONLAT = Transformer.from_crs(27700, 4326, always_xy=True)

CENTRE = """async () => {
  const { map } = await import('/static/js/mappage.js');
  const c = map.getCenter();
  return [c.lng, c.lat, map.getZoom()];
}"""
TO_LATLNG = """async (points) => {
  const { map } = await import('/static/js/mappage.js');
  return points.map(([x, y]) => {
    const p = map.containerPointToLatLng([x, y]);
    return [p.lng, p.lat];
  });
}"""


def open_map(page, path: str = "/") -> None:
    page.goto(path)
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def map_centre(page) -> tuple[float, float, int]:
    lon, lat, zoom = page.evaluate(CENTRE)
    return lon, lat, zoom


def wait_for_centre(page, lon: float, lat: float, within_m: float) -> None:
    for _ in range(50):
        got = map_centre(page)
        if metres_between(got[:2], (lon, lat)) < within_m:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the map is centred at {got}, not {lon}, {lat}")


@pytest.mark.browser
def test_search_a_place_with_the_keyboard(page, client, artifacts):
    open_map(page)
    lon, lat, _ = map_centre(page)  # equal names: the nearest to the map's centre first
    params = {"q": "Bramhall", "limit": 8, "near": f"{lon:.5f},{lat:.5f}"}
    first = client.get("/api/search", params=params).json()["results"][0]
    box = page.get_by_role("combobox", name="Search for a place")
    assert box.get_attribute("aria-expanded") == "false"
    assert box.get_attribute("aria-controls") == "search-listbox"
    assert box.get_attribute("aria-autocomplete") == "list"
    box.press_sequentially("Bramhall", delay=20)
    listbox = page.get_by_role("listbox", name="Suggestions")
    listbox.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    options = listbox.get_by_role("option")
    assert options.first.inner_text().startswith(first["label"])
    # The text alternative lists the same results, and is announced.
    assert page.locator(".app-search__results").get_attribute("aria-live") == "polite"
    assert first["label"] in page.locator("#search-results").inner_text()

    box.press("ArrowDown")
    first_id = options.first.get_attribute("id")
    assert box.get_attribute("aria-activedescendant") == first_id
    assert options.first.get_attribute("aria-selected") == "true"
    box.press("ArrowDown")
    box.press("ArrowUp")
    assert box.get_attribute("aria-activedescendant") == first_id
    box.press("Enter")
    assert box.get_attribute("aria-expanded") == "false"
    assert box.get_attribute("aria-activedescendant") is None
    assert box.input_value() == first["label"]

    if first["bbox"]:
        west, south, east, north = first["bbox"]
        lon, lat = (west + east) / 2, (south + north) / 2
        within = metres_between((west, south), (east, north)) / 2 + 50
    else:
        lon, lat, within = first["lon"], first["lat"], 5
    wait_for_centre(page, lon, lat, within)
    page.wait_for_function(
        "([lon, lat]) => { const p = new URLSearchParams(location.search);"
        " return Math.abs(p.get('lat') - lat) < 0.01 && Math.abs(p.get('lng') - lon) < 0.01; }",
        arg=[lon, lat],
    )
    assert page.locator(".leaflet-marker-icon").count() == 1
    assert page.locator(".app-search-label").inner_text() == first["label"]
    assert "Showing" in page.locator("#search-summary").inner_text()
    page.screenshot(path=str(artifacts / "tool-search-place.png"))

    # Escape closes the suggestions, then clears the box.
    box.fill("")
    box.press_sequentially("Bram", delay=20)
    listbox.wait_for()
    box.press("Escape")
    assert box.get_attribute("aria-expanded") == "false"
    assert listbox.is_hidden()
    box.press("Escape")
    assert box.input_value() == ""


@pytest.mark.browser
@pytest.mark.parametrize("query", ["SJ 89 90", "389000, 390000"])
def test_search_a_grid_reference(page, artifacts, query):
    lon, lat = BNG_TO_LONLAT.transform(389000, 390000)
    open_map(page)
    box = page.get_by_role("combobox", name="Search for a place")
    box.fill(query)
    box.press("Enter")  # one result: shown straight away
    wait_for_centre(page, lon, lat, 3)
    assert map_centre(page)[2] == 17
    assert page.locator(".leaflet-marker-icon").count() == 1
    listed = page.locator("#search-results").inner_text()
    assert re.search(r"grid reference|easting, northing", listed)
    name = re.sub(r"\W+", "-", query).strip("-").lower()
    page.screenshot(path=str(artifacts / f"tool-search-{name}.png"))


@pytest.mark.browser
def test_search_suggestions_are_accessible(page, artifacts):
    open_map(page)
    box = page.get_by_role("combobox", name="Search for a place")
    box.press_sequentially("Bram", delay=20)
    page.get_by_role("listbox", name="Suggestions").wait_for()
    box.press("ArrowDown")
    page.screenshot(path=str(artifacts / "tool-search-suggestions.png"))
    assert axe_violations(page, artifacts / "axe-map-search.json") == []


@pytest.mark.browser
def test_locate_me(page, artifacts):
    lon, lat = -2.1575, 53.408  # in the borough
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 20})
    open_map(page)
    page.get_by_role("button", name="Show my location").click()
    wait_for_centre(page, lon, lat, 2)
    status = page.locator("#map-tools-status")
    page.wait_for_function(
        "() => document.getElementById('map-tools-status').textContent.includes('Inside')"
    )
    assert "accurate to about 20 metres" in status.inner_text()
    assert page.locator("path.app-here").count() == 1
    page.screenshot(path=str(artifacts / "tool-locate.png"))


@pytest.mark.browser
def test_locate_me_refused(page):
    page.context.clear_permissions()
    open_map(page)
    page.evaluate(
        """() => { navigator.geolocation.getCurrentPosition = (_ok, fail) =>
             fail({ code: 1, message: 'User denied Geolocation' }); }"""
    )
    page.get_by_role("button", name="Show my location").click()
    assert "not allowed to use it" in page.locator("#map-tools-status").inner_text()


@pytest.mark.browser
def test_fullscreen(page, artifacts):
    open_map(page)
    button = page.get_by_role("button", name="Full screen map")
    assert button.get_attribute("aria-pressed") == "false"
    button.click()
    button = page.get_by_role("button", name="Exit full screen")
    assert button.get_attribute("aria-pressed") == "true"
    assert page.evaluate(
        "() => document.fullscreenElement?.classList.contains('app-map-wrapper')"
        " || !!document.querySelector('.app-map-wrapper--fullscreen')"
    )
    page.screenshot(path=str(artifacts / "tool-fullscreen.png"))
    button.click()
    button = page.get_by_role("button", name="Full screen map")
    assert button.get_attribute("aria-pressed") == "false"
    assert page.evaluate("() => !document.fullscreenElement")


def click_map(page, points: list[tuple[int, int]]) -> list[tuple[float, float]]:
    box = page.locator("#map").bounding_box()
    for x, y in points:
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(50)
    return [tuple(p) for p in page.evaluate(TO_LATLNG, points)]


@pytest.mark.browser
def test_measure_a_distance(page, artifacts):
    open_map(page)
    measure = page.get_by_role("button", name="Measure distance or area")
    measure.click()
    assert measure.get_attribute("aria-pressed") == "true"
    a, b = click_map(page, [(200, 200), (700, 450)])
    expected = metres_between(a, b)
    page.keyboard.press("Enter")
    assert measure.get_attribute("aria-pressed") == "false"
    measured = float(page.locator("#map").get_attribute("data-measure-distance"))
    assert measured == pytest.approx(expected, rel=0.01)
    status = page.locator("#map-tools-status").inner_text()
    assert status.startswith("Measured. Distance:")
    assert ("km" in status) == (measured >= 1000)
    assert page.locator(".leaflet-popup").count() == 0  # clicks measured, no popups
    page.screenshot(path=str(artifacts / "tool-measure-distance.png"))


@pytest.mark.browser
def test_measure_an_area_and_cancel(page, artifacts):
    open_map(page)
    page.get_by_role("button", name="Measure distance or area").click()
    corners = [(300, 200), (650, 220), (600, 500), (320, 480)]
    lonlats = click_map(page, [*corners, corners[0]])[:4]  # the first point again closes it
    expected, _ = GEOD.polygon_area_perimeter([p[0] for p in lonlats], [p[1] for p in lonlats])
    measured = float(page.locator("#map").get_attribute("data-measure-area"))
    assert measured == pytest.approx(abs(expected), rel=0.01)
    assert "Area:" in page.locator("#map-tools-status").inner_text()
    assert "hectares" in page.locator("#map-tools-status").inner_text()
    page.screenshot(path=str(artifacts / "tool-measure-area.png"))

    # From the keyboard: Space adds the point at the cross-hair, Escape cancels.
    page.get_by_role("button", name="Measure distance or area").click()
    page.locator("#map").focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    assert "Distance:" in page.locator("#map-tools-status").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#map-tools-status").inner_text() == "Measuring cancelled."
    assert page.locator("path.app-measure-vertex").count() == 0


@pytest.mark.browser
def test_builtin_basemap_without_a_tile_service(page, artifacts):
    open_map(page)
    assert page.locator("#map").get_attribute("data-basemap") == "builtin"
    page.wait_for_selector("#map[data-basemap-drawn]", timeout=20_000)
    assert page.locator(".leaflet-basemap-pane path.app-basemap-wards").count() > 5
    assert page.locator(".leaflet-basemap-pane path.app-basemap-watercourses").count() > 0
    assert page.locator(".leaflet-tile").count() == 0
    page.screenshot(path=str(artifacts / "tool-basemap-builtin.png"))


@pytest.mark.browser
def test_unreachable_tile_service_falls_back_to_builtin(page):
    serve_basemap(page, lambda route: route.abort())
    open_map(page)
    page.wait_for_selector("#map[data-basemap=builtin]", timeout=10_000)
    page.wait_for_selector("path.app-basemap-wards", timeout=20_000)
    assert page.locator(".leaflet-tile-pane img").count() == 0


# A 1×1 PNG, the tile every request of the test tile service gets.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a0e2a4f60000000049454e44ae426082"
)


def serve_basemap(page, tiles) -> None:  # noqa: ANN001
    # The page as the service sends it with that base map set: its CSP allows the tiles.
    policy = policies(Settings(basemap_url="http://tiles.invalid/{z}/{x}/{y}.png"))[0]

    def with_basemap(route):  # noqa: ANN001
        response = route.fetch()
        body = response.text().replace(
            '"basemap": null',
            '"basemap": {"url": "http://tiles.invalid/{z}/{x}/{y}.png", '
            '"attribution": "Test tiles", "maxZoom": 19}',
        )
        headers = {**response.headers, "content-security-policy": policy}
        route.fulfill(response=response, body=body, headers=headers)

    page.route(re.compile(r"/$"), with_basemap)
    page.route("http://tiles.invalid/**", tiles)


@pytest.mark.browser
def test_configured_tile_service(page):
    serve_basemap(page, lambda route: route.fulfill(body=PNG, content_type="image/png"))
    open_map(page)
    page.wait_for_selector(".leaflet-tile-pane img.leaflet-tile-loaded", timeout=10_000)
    assert page.locator("#map").get_attribute("data-basemap") == "tiles"
    assert "Test tiles" in page.locator(".leaflet-control-attribution").inner_text()
    assert page.locator("path.app-basemap-wards").count() == 0
