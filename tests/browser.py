"""What the browser tests share: Debian's chromium driven by Playwright (never a browser
that Playwright downloads), and axe-core from npm for accessibility checks."""

import json
from collections.abc import Iterator
from pathlib import Path

from mapserver.pages import FRONTEND_DIR

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


def axe_violations(page, report: Path) -> list[dict]:  # noqa: ANN001 (a Playwright page)
    """Run axe-core on the page; write its full report; return the violations, short."""
    # Evaluated through the DevTools protocol: the page's Content-Security-Policy forbids
    # the inline <script> that add_script_tag would insert, and should.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("tags => axe.run(document, {runOnly: tags})", WCAG_TAGS)
    report.write_text(json.dumps(result["violations"], indent=2))
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in result["violations"]
    ]


def browser_page(browser, base_url: str, **options) -> Iterator:  # noqa: ANN001, ANN003
    """A page in a fresh browser context (Playwright ``new_context`` options); fails the test
    on any JavaScript error."""
    context = browser.new_context(base_url=base_url, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def sign_in(page, email: str, password: str) -> None:  # noqa: ANN001 (a Playwright page)
    """Sign in through the login form (from wherever the page is; /login if not there)."""
    if "/login" not in page.url:
        page.goto("/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(f"text=Signed in as {email}")
