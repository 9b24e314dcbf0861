"""Security headers on every answer, cookie flags, CSRF on session writes, and a map that
runs under its Content-Security-Policy without a single violation."""

import re

import httpx
import pytest

from mapserver.access import create_key
from mapserver.sessions import create_user

PASSWORD = "correct horse battery staple"
OUR_PAGES = [
    "/", "/login", "/connect", "/status", "/healthz", "/readyz", "/no-such-page",
    "/static/css/app.css", "/vendor/leaflet/leaflet.js", "/api/search?q=library",
]  # fmt: skip
THIRD_PARTY_PAGES = [
    "/ogc", "/ogc/collections?f=html", "/ogc/collections/libraries?f=html", "/api/docs",
]  # fmt: skip


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.fixture(scope="module")
def staff_key(engine) -> str:
    return create_key(engine, "security test", "staff")[1]


@pytest.mark.parametrize("path", OUR_PAGES + THIRD_PARTY_PAGES)
def test_every_answer_has_the_security_headers(client, staff_key, path):
    response = client.get(path, headers={"X-API-Key": staff_key})
    assert response.status_code in (200, 404), response.text
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["object-src"] == "object-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in response.headers["permissions-policy"]
    assert "strict-transport-security" not in response.headers  # plain http here
    if path in OUR_PAGES:
        assert policy["script-src"] == "script-src 'self'"
        assert policy["style-src"] == "style-src 'self'"
    else:  # pygeoapi's and Swagger UI's own pages, with their inline code (docs/security.md)
        assert "'unsafe-inline'" in policy["script-src"]


def test_hsts_and_secure_cookies_behind_tls(outsider):
    """The second server's public URL is https (a TLS proxy in front)."""
    base_url, engine = outsider
    create_user(engine, "tls.planner@example.gov.uk", "TLS Planner", "staff", PASSWORD)
    with httpx.Client(base_url=base_url) as http:
        page = http.get("/login")
        assert page.headers["strict-transport-security"].startswith("max-age=31536000")
        assert "upgrade-insecure-requests" in page.headers["content-security-policy"]
        login_cookie = page.headers["set-cookie"]
        assert re.search(r"mslogin=.*; HttpOnly;.*SameSite=strict; Secure", login_cookie)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        http.cookies.set("mslogin", page.cookies["mslogin"])  # Secure: not sent over http
        form = {"email": "tls.planner@example.gov.uk", "password": PASSWORD, "csrf_token": token}
        signed_in = http.post("/login", data=form)
        session = signed_in.headers["set-cookie"]
        assert signed_in.status_code == 303
        assert "msid=" in session and "HttpOnly" in session and "SameSite=lax" in session
        assert "Secure" in session


@pytest.fixture(scope="module")
def staff_email(engine) -> str:
    create_user(engine, "csrf.planner@example.gov.uk", "CSRF Planner", "staff", PASSWORD)
    return "csrf.planner@example.gov.uk"


@pytest.fixture
def session(base_url, staff_email):
    """A signed-in staff browser: the client, and the session's CSRF token."""
    with httpx.Client(base_url=base_url) as http:
        page = http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        http.post("/login", data={"email": staff_email, "password": PASSWORD, "csrf_token": token})
        home = http.get("/")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text).group(1)
        yield http, csrf


QUERY = {"op": "=", "args": [{"property": "name"}, "Central Library"]}


def test_session_writes_need_the_csrf_token(session):
    http, csrf = session
    items = "/ogc/collections/libraries/items"
    headers = {"Content-Type": "application/query-cql-json"}
    refused = http.post(items, json=QUERY, headers=headers)
    assert refused.status_code == 403 and "did not come from a page of this site" in refused.text
    assert (
        http.post(items, json=QUERY, headers=headers | {"X-CSRF-Token": "forged"}).status_code
        == 403
    )
    allowed = http.post(items, json=QUERY, headers=headers | {"X-CSRF-Token": csrf})
    assert allowed.status_code == 200, allowed.text


def test_session_writes_from_another_site_are_refused(session):
    http, csrf = session
    for header in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = http.post("/logout", data={"csrf_token": csrf}, headers=header)
        assert response.status_code == 403
    assert "Signed in as" in http.get("/").text  # still signed in
    assert http.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert "Signed in as" not in http.get("/").text


def test_api_keys_need_no_csrf_token(client, staff_key):
    """A browser never adds an API key by itself, so a forged request cannot carry one."""
    response = client.post(
        "/ogc/collections/libraries/items", json=QUERY,
        headers={"X-API-Key": staff_key, "Content-Type": "application/query-cql-json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text


VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.mark.browser
def test_the_map_runs_under_its_csp(page):
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security" in m.text else None)
    page.add_init_script(VIOLATIONS)
    response = page.goto("/?layers=libraries,pharmacies")
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    page.wait_for_selector("#map[data-ready=true]", timeout=20_000)
    page.wait_for_selector("path.layer-libraries", timeout=20_000)
    page.locator("path.layer-libraries").first.click(force=True)
    page.locator(".leaflet-popup-content").wait_for()
    page.locator("#print-panel summary").click()
    with page.expect_download(timeout=30_000):
        page.get_by_role("button", name="Download PNG").click()
    assert page.evaluate("window.__csp") == []
    assert console == []
    # The watch works: an inline style attribute is refused and reported.
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__csp")[0].startswith("style-src")
