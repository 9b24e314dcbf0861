"""Staff sign in with a password: sessions, CSRF, lockout, and what a session may see."""

import re

import httpx
import pytest
from sqlalchemy import text

from mapserver.sessions import MAX_FAILURES, create_user

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def staff_user(engine):
    create_user(engine, "Planner@Example.gov.uk", "A Planner", "staff", PASSWORD)
    return "planner@example.gov.uk"


def sign_in(http: httpx.Client, email: str, password: str, next_url: str = "/") -> httpx.Response:
    page = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return http.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": next_url},
    )


def test_sign_in_out(base_url, staff_user):
    with httpx.Client(base_url=base_url) as http:
        response = sign_in(http, "PLANNER@example.gov.uk", PASSWORD, "/ogc/collections?f=json")
        assert response.status_code == 303
        assert response.headers["location"] == "/ogc/collections?f=json"
        cookie = response.headers["set-cookie"]
        assert "msid=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        listed = {c["id"] for c in http.get("/ogc/collections?f=json").json()["collections"]}
        assert "road_casualties" in listed
        # Logging out needs the session's CSRF token: without it, nothing happens (the
        # CSRF guard answers 403 before the route sees it).
        assert http.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert "road_casualties" in {
            c["id"] for c in http.get("/ogc/collections?f=json").json()["collections"]
        }
        page = http.get("/")
        assert "Signed in as planner@example.gov.uk" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert http.post("/logout", data={"csrf_token": token}).status_code == 303
        listed = {c["id"] for c in http.get("/ogc/collections?f=json").json()["collections"]}
        assert "road_casualties" not in listed


def test_wrong_password_and_lockout(base_url, engine):
    create_user(engine, "locked@example.gov.uk", "Locked", "staff", PASSWORD)
    with httpx.Client(base_url=base_url) as http:
        for _ in range(MAX_FAILURES):
            wrong = sign_in(http, "locked@example.gov.uk", "not the password")
            assert wrong.status_code == 401
            assert "The email address or password is not right" in wrong.text
        locked = sign_in(http, "locked@example.gov.uk", PASSWORD)
        assert locked.status_code == 429 and "Too many failed attempts" in locked.text
        unknown = sign_in(http, "nobody@example.gov.uk", PASSWORD)
        assert unknown.status_code == 401  # the same answer as a wrong password


def test_login_form_needs_its_csrf_token(base_url, staff_user):
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/login", data={"email": staff_user, "password": PASSWORD})
        assert response.status_code == 400 and "form expired" in response.text


def test_no_open_redirect(base_url, staff_user):
    with httpx.Client(base_url=base_url) as http:
        response = sign_in(http, staff_user, PASSWORD, "//evil.example/steal")
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_passwords_are_hashed(engine, staff_user):
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM app.users WHERE email = :e"), {"e": staff_user}
        ).scalar_one()
    assert stored.startswith("scrypt$") and PASSWORD not in stored


def test_short_password_is_refused(engine):
    with pytest.raises(ValueError, match="at least 12"):
        create_user(engine, "short@example.gov.uk", "Short", "staff", "tooshort")
