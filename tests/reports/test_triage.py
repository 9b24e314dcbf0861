"""Staff triage over real HTTP and in Debian's chromium: the queue and its filters, map
and CSV; a report's actions (status with a reply template, team, internal note, public
update, duplicate, redaction kept for audit, hiding a photo); the dashboard; and that
none of it opens to anyone without a staff session."""

import csv
import io
import re

import pytest
from sqlalchemy import text

from tests.browser import axe_violations

from .conftest import PASSWORD, jpeg_with_gps, key, report_form

STAFF = "reports-staff@example.gov.uk"  # the staff_http user, as changes record them


def make(client, files=None, **fields):
    answer = client.post(
        "/api/reports",
        data=report_form(**fields),
        files=files or [],
        headers={"Idempotency-Key": key()},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["reference"]


def act(staff_http, reference, **form):
    http, csrf = staff_http
    return http.post(f"/staff/reports/{reference}", data={"csrf_token": csrf, **form})


@pytest.mark.parametrize(
    "path", ["/staff/reports", "/staff/reports.csv", "/staff/dashboard", "/staff/reports/X"]
)
def test_staff_pages_ask_to_sign_in(client, path):
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


def test_staff_data_is_not_found_for_others(client):
    assert client.get("/staff/reports.geojson").status_code == 404


def test_actions_need_a_session_and_its_csrf_token(client, staff_http, scalar):
    reference = make(client, title="Needs a token")
    anonymous = client.post(
        f"/staff/reports/{reference}", data={"action": "state", "state": "fixed"},
        follow_redirects=False,
    )  # fmt: skip
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    http, _ = staff_http
    forged = http.post(
        f"/staff/reports/{reference}", data={"action": "state", "state": "fixed", "csrf_token": "x"}
    )
    assert forged.status_code == 403  # the CSRF guard (mapserver/csrf.py) answers first
    assert scalar("SELECT state FROM app.reports WHERE reference = :r", r=reference) == "open"


def test_queue_filters_csv_and_map(client, staff_http):
    http, _ = staff_http
    pothole = make(client, title="Queue pothole", email="queue@example.org", phone="0161 480 4949")
    flytip = make(client, category="fly_tipping", title="Queue fly-tipping")
    page = http.get("/staff/reports", params={"category": "pothole"})
    assert page.status_code == 200
    assert pothole in page.text and flytip not in page.text
    assert page.headers["cache-control"] == "private, no-store"
    rows = list(csv.DictReader(io.StringIO(http.get("/staff/reports.csv").text)))
    mine = next(r for r in rows if r["reference"] == pothole)
    assert mine["reporter_email"] == "queue@example.org" and mine["state"] == "open"
    fixed_only = http.get("/staff/reports.csv", params={"state": "fixed"}).text
    assert pothole not in fixed_only
    geojson = http.get("/staff/reports.geojson", params={"search": "Queue fly"}).json()
    assert [f["properties"]["reference"] for f in geojson["features"]] == [flytip]


def test_csv_is_safe_in_spreadsheets(client, staff_http):
    http, _ = staff_http
    reference = make(client, title='=HYPERLINK("http://evil.example")')
    rows = list(csv.DictReader(io.StringIO(http.get("/staff/reports.csv").text)))
    title = next(r["title"] for r in rows if r["reference"] == reference)
    assert title.startswith("'=")


def test_every_action_is_kept_with_who_and_when(client, staff_http, engine, scalar):
    reference = make(
        client, title="Report with my phone 07700 900123", email="moderate@example.org",
        files=[("photos", ("a.jpg", jpeg_with_gps(), "image/jpeg"))],
    )  # fmt: skip
    assert act(staff_http, reference, action="team", team="drainage").status_code == 303
    assert act(staff_http, reference, action="update", kind="internal",
               body="Crew booked").status_code == 303  # fmt: skip
    answer = act(staff_http, reference, action="state", state="investigating",
                 template="inspecting")  # fmt: skip
    assert answer.status_code == 303
    assert act(staff_http, reference, action="redact", title="Report with my phone [redacted]",
               description="About 10 cm deep.").status_code == 303  # fmt: skip
    photo = scalar(
        "SELECT p.id FROM app.report_photos p JOIN app.reports r ON r.id = p.report_id"
        " WHERE r.reference = :r", r=reference,
    )  # fmt: skip
    assert act(staff_http, reference, action="photo", photo=photo, hidden="1").status_code == 303
    assert client.get(f"/reports/photos/{photo}").status_code == 404  # hidden from the public
    with engine.connect() as conn:
        report = conn.execute(
            text("SELECT * FROM app.reports WHERE reference = :r"), {"r": reference}
        ).one()
        notes = conn.execute(
            text("SELECT kind, body, author FROM app.report_updates WHERE report_id = :id"
                 " ORDER BY id"), {"id": report.id},
        ).all()  # fmt: skip
        states = conn.execute(
            text("SELECT state, changed_by FROM app.report_states WHERE report_id = :id"
                 " ORDER BY id"), {"id": report.id},
        ).all()  # fmt: skip
    assert report.team == "drainage" and report.state == "investigating"
    assert report.original_title == "Report with my phone 07700 900123"
    assert report.first_response_at is not None
    assert ("internal", "Assigned to Highway drainage.", STAFF) in notes
    assert ("internal", "Crew booked", STAFF) in notes
    assert any(n.kind == "public" and "inspector will look" in n.body for n in notes)
    assert states[-1] == ("investigating", STAFF)
    public = client.get(f"/reports/{reference}").text
    assert "07700 900123" not in public and "Crew booked" not in public
    assert "inspector will look" in public
    emails = scalar(
        "SELECT count(*) FROM app.email_outbox WHERE report_id = :id AND kind = 'state_change'",
        id=report.id,
    )
    assert emails == 1


def test_duplicate_and_refusals(client, staff_http, scalar):
    original = make(client, title="The original")
    copy = make(client, title="The copy")
    bad = act(staff_http, copy, action="duplicate", of="SMBC-1999-000001")
    assert bad.status_code == 400 and "original report" in bad.text
    assert act(staff_http, copy, action="duplicate", of=original).status_code == 303
    assert scalar("SELECT state FROM app.reports WHERE reference = :r", r=copy) == "duplicate"
    again = act(staff_http, copy, action="state", state="fixed")
    assert again.status_code == 409
    assert act(staff_http, copy, action="team", team="nobody").status_code == 400
    assert act(staff_http, copy, action="fly").status_code == 400
    assert act(staff_http, "SMBC-1999-000002", action="state", state="fixed").status_code == 404


def test_dashboard_figures(client, staff_http):
    make(client, title="For the dashboard")
    http, _ = staff_http
    page = http.get("/staff/dashboard", params={"days": 28})
    assert page.status_code == 200
    backlog = re.search(r"Under a day</dt><dd[^>]*>(\d+)<", page.text)
    assert backlog and int(backlog.group(1)) >= 1
    assert "Pothole" in page.text and "All categories" in page.text


@pytest.mark.browser
def test_staff_triage_to_fixed_in_the_browser(client, page, engine, artifacts):
    from mapserver.sessions import create_user

    create_user(engine, "triage-browser@example.gov.uk", "Triage Officer", "staff", PASSWORD)
    reference = make(client, title="Browser triage pothole")
    page.goto("/login?next=/staff/reports")
    page.get_by_label("Email address").fill("triage-browser@example.gov.uk")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/reports")
    page.locator("#queue-map[data-ready=true]").wait_for()
    assert axe_violations(page, artifacts / "axe-staff-queue.json") == []
    page.get_by_role("link", name=reference).click()
    page.wait_for_url(f"**/staff/reports/{reference}")
    assert axe_violations(page, artifacts / "axe-staff-report.json") == []
    page.locator("#state-template").select_option(label="Repaired")
    assert page.locator("#state").input_value() == "fixed"
    assert "repaired" in page.locator("#note").input_value()
    page.get_by_role("button", name="Change status").click()
    page.locator("#result").wait_for()
    assert page.locator("#report-state").inner_text() == "Fixed"
    page.screenshot(path=str(artifacts / "staff-report-fixed.png"), full_page=True)
    page.goto(f"/reports/{reference}")
    assert page.locator("#report-state").inner_text().strip().endswith("Fixed")
    assert "This has been repaired" in page.content()
    page.goto("/staff/dashboard")
    assert axe_violations(page, artifacts / "axe-staff-dashboard.json") == []
