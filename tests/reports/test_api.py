"""The reports API over real HTTP: submit with photos, idempotency, refusals, the nearby
check and me-too, the public view without personal data, staff state changes, the
reporter's update and reopening, and the layers published through the OGC API."""

import io
import threading
import time
from datetime import timedelta

import httpx
import piexif
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import text

from mapserver.app import create_app
from reports.domain import REOPEN_WINDOW

from ..conftest import free_port
from .conftest import OUTSIDE, jpeg_with_gps, key, report_form

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def submit(client, files=None, idem=None, **fields):
    headers = {"Idempotency-Key": idem} if idem else {}
    return client.post(
        "/api/reports", data=report_form(**fields), files=files or [], headers=headers
    )


def test_submit_with_a_photo_strips_exif_and_queues_confirmation(client, runtime, scalar, engine):
    upload = jpeg_with_gps()
    assert piexif.load(upload)["GPS"]
    answer = submit(
        client,
        files=[("photos", ("IMG_0001.jpg", upload, "image/jpeg"))],
        idem=key(),
        email="resident@example.org",
        name="Rita Resident",
        phone="0161 480 4949",
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["reference"].startswith("SMBC-20") and body["token"]
    with engine.connect() as conn:
        photo = conn.execute(
            text(
                "SELECT p.id, p.store_key FROM app.report_photos p JOIN app.reports r"
                " ON r.id = p.report_id WHERE r.reference = :ref"
            ),
            {"ref": body["reference"]},
        ).one()
    stored = (runtime.settings.photos_path / photo.store_key).read_bytes()
    assert piexif.load(stored)["GPS"] == {} and not Image.open(io.BytesIO(stored)).getexif()
    served = client.get(f"/reports/photos/{photo.id}")
    assert served.status_code == 200 and served.headers["x-content-type-options"] == "nosniff"
    assert piexif.load(served.content)["GPS"] == {}
    assert (
        scalar(
            "SELECT count(*) FROM app.email_outbox WHERE to_address = 'resident@example.org'"
            " AND subject LIKE '%' || :ref || '%'",
            ref=body["reference"],
        )
        == 1
    )
    # The public view has no email, phone or (not chosen to show) name.
    public = client.get(f"/api/reports/{body['reference']}").text
    for private in ("resident@example.org", "480 4949", "Rita"):
        assert private not in public
    page = client.get(f"/reports/{body['reference']}").text
    assert "Rita" not in page and "resident@example.org" not in page


def test_idempotency_key_one_report_same_answer(client, scalar):
    idem = key()
    first = submit(client, idem=idem, title="Idempotent pothole")
    again = submit(client, idem=idem, title="Idempotent pothole")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["reference"] == first.json()["reference"]
    assert again.json()["token"] == first.json()["token"] and again.json()["replayed"]
    assert scalar("SELECT count(*) FROM app.reports WHERE idempotency_key = :k", k=idem) == 1


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("evil.jpg", b"<script>alert(1)</script>", "image/jpeg"),
        ("page.png", b"<html><body>not a png</body></html>", "image/png"),
        ("x.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "image/heic"),
    ],
)
def test_not_an_image_is_refused_and_nothing_is_kept(client, scalar, runtime, name, data, kind):
    idem = key()
    files_before = sum(1 for _ in runtime.settings.photos_path.rglob("*.jpg"))
    answer = submit(client, files=[("photos", (name, data, kind))], idem=idem)
    assert answer.status_code == 422
    assert (
        "not a JPEG, PNG, WebP or HEIC" in answer.json()["errors"]["photos"]
        or "damaged" in answer.text
    )
    assert scalar("SELECT count(*) FROM app.reports WHERE idempotency_key = :k", k=idem) == 0
    assert sum(1 for _ in runtime.settings.photos_path.rglob("*.jpg")) == files_before


def test_too_many_photos_and_bad_fields(client):
    photo = ("photos", ("a.jpg", jpeg_with_gps((20, 20)), "image/jpeg"))
    assert submit(client, files=[photo] * 4).status_code in (400, 422)
    assert submit(client, category="nonsense").json()["errors"]["category"]
    assert submit(client, title="").json()["errors"]["title"]
    assert submit(client, email="not-an-email").json()["errors"]["email"]
    assert submit(client, lon="abc").json()["errors"]["location"]
    assert client.post("/api/reports", json={"title": "x"}).status_code == 415
    chunked = client.post(
        "/api/reports", content=iter([b"title=x"]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert chunked.status_code == 411
    assert submit(client, idem="short").status_code == 400


def test_outside_the_borough_names_the_neighbour(client):
    answer = submit(client, **OUTSIDE)
    assert answer.status_code == 422
    assert "outside Stockport" in answer.json()["errors"]["location"]
    assert "Manchester" in answer.json()["errors"]["location"]
    check = client.get("/api/reports/check", params=OUTSIDE).json()
    assert check["inside"] is False and "Manchester" in check["message"]


def test_asset_snap_nearby_and_me_too(client, streetlight, scalar):
    near = {"lon": streetlight.lon + 0.0001, "lat": streetlight.lat}  # ~7 m east
    check = client.get("/api/reports/check", params=near | {"category": "streetlight"}).json()
    assert check["inside"] and check["snapped"] and check["asset_id"] == streetlight.asset_id
    answers = {"answer.fault": "off_at_night"}
    made = submit(
        client, category="streetlight", title="Light out", **near, **answers, idem=key()
    ).json()
    assert (
        scalar("SELECT asset_id FROM app.reports WHERE reference = :r", r=made["reference"])
        == streetlight.asset_id
    )
    # The question of the category is required.
    missing = submit(client, category="streetlight", title="Light out", **near)
    assert "What is wrong with the light" in missing.json()["errors"]["answers"]
    # Someone else checks the same asset: "Is this it?"
    again = client.get(
        "/api/reports/check",
        params={"lon": streetlight.lon, "lat": streetlight.lat, "category": "streetlight"},
    ).json()
    assert made["reference"] in [r["reference"] for r in again["nearby"]]
    other = client.get("/api/reports/check", params=near | {"category": "pothole"}).json()
    assert made["reference"] not in [r["reference"] for r in other["nearby"]]
    me = client.post(f"/api/reports/{made['reference']}/me-too", data={"email": "n@example.org"})
    assert me.status_code == 200 and me.json()["interest_count"] == 1
    assert (
        scalar(
            "SELECT count(*) FROM app.report_subscribers s JOIN app.reports r ON r.id = s.report_id"
            " WHERE r.reference = :r AND s.email = 'n@example.org'",
            r=made["reference"],
        )
        == 1
    )


def test_staff_fix_and_reporter_reopen_within_8_weeks(client, staff_http, engine):
    made = submit(client, idem=key(), email="fixer@example.org").json()
    ref, token = made["reference"], made["token"]
    # Not staff: refused.
    assert client.post(f"/api/reports/{ref}/state", json={"state": "fixed"}).status_code == 403
    http, csrf = staff_http
    # A session without its CSRF token is refused too.
    assert http.post(f"/api/reports/{ref}/state", json={"state": "fixed"}).status_code == 403
    fixed = http.post(
        f"/reports/{ref}/state", data={"state": "fixed", "note": "Filled.", "csrf_token": csrf}
    )
    assert fixed.status_code == 303
    view = client.get(f"/api/reports/{ref}").json()
    assert view["state"] == "fixed" and [h["state"] for h in view["history"]] == ["open", "fixed"]
    assert view["updates"][0]["body"] == "Filled."
    assert [h["by"] for h in view["history"]] == ["Reporter", "Council"]  # no staff email
    # The reporter's page offers reopening; a wrong token offers nothing.
    assert "Reopen" in client.get(f"/reports/{ref}", params={"token": token}).text
    assert "Reopen" not in client.get(f"/reports/{ref}", params={"token": "wrong"}).text
    forged = client.post(
        f"/reports/{ref}/update", data={"token": "wrong", "body": "x", "action": "reopen"}
    )
    assert forged.status_code == 404
    reopened = client.post(
        f"/reports/{ref}/update", data={"token": token, "body": "Still broken", "action": "reopen"}
    )
    assert reopened.status_code == 303
    assert client.get(f"/api/reports/{ref}").json()["state"] == "open"
    # Fixed more than 8 weeks ago: no reopening.
    http.post(f"/reports/{ref}/state", data={"state": "fixed", "csrf_token": csrf})
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE app.reports SET fixed_at = fixed_at - :age WHERE reference = :r"),
            {"age": REOPEN_WINDOW + timedelta(days=1), "r": ref},
        )
    late = client.post(
        f"/reports/{ref}/update", data={"token": token, "body": "Again", "action": "reopen"}
    )
    assert late.status_code == 409 and "8 weeks" in late.text
    assert client.get(f"/api/reports/{ref}").json()["state"] == "fixed"


def test_user_text_is_escaped_everywhere(client, staff_http):
    made = submit(client, idem=key(), title=XSS, description=XSS, name=XSS, show_name="1").json()
    ref, token = made["reference"], made["token"]
    client.post(f"/reports/{ref}/update", data={"token": token, "body": XSS, "action": "update"})
    for url in (f"/reports/{ref}", f"/reports/{ref}?token={token}",
                f"/reports/{ref}/confirmation?token={token}"):  # fmt: skip
        page = client.get(url).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    http, _ = staff_http
    assert "<script>alert" not in http.get(f"/reports/{ref}").text


def test_published_layers_have_no_personal_data(client, staff_http):
    made = submit(client, idem=key(), title="Layer check", email="secret@example.org",
                  name="Hidden Name", phone="07700 900123").json()  # fmt: skip
    items = client.get(
        "/ogc/collections/reports_public/items",
        params={"f": "json", "reference": made["reference"]},
    ).json()
    assert len(items["features"]) == 1
    text_ = str(items)
    for private in ("secret@example.org", "Hidden Name", "07700"):
        assert private not in text_
    x, y = client.get(
        "/ogc/collections/reports_public/items",
        params={
            "f": "json",
            "reference": made["reference"],
            "crs": "http://www.opengis.net/def/crs/EPSG/0/27700",
        },
    ).json()["features"][0]["geometry"]["coordinates"]
    assert x % 10 == 0 and y % 10 == 0  # rounded to 10 m
    assert client.get("/ogc/collections/reports_staff/items?f=json").status_code == 404
    http, _ = staff_http
    staff = http.get(
        "/ogc/collections/reports_staff/items", params={"f": "json", "reference": made["reference"]}
    ).json()
    assert staff["features"][0]["properties"]["reporter_email"] == "secret@example.org"
    tile = client.get("/ogc/collections/reports_public/tiles/WebMercatorQuad/10/330/508")
    assert tile.status_code in (200, 204) and tile.headers["cache-control"] == "no-store"


def test_a_failed_transaction_keeps_neither_report_nor_photo(client, engine, runtime, scalar):
    """PostgreSQL refuses the insert (a trigger stands for any failure after the photos
    were written): 503, no report, and the photo files are gone again."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION app.refuse_report() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN IF NEW.title = 'refuse me' THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END$$;"
                " CREATE TRIGGER refuse_report BEFORE INSERT ON app.reports FOR EACH ROW"
                " EXECUTE FUNCTION app.refuse_report()"
            )
        )
    try:
        before = sorted(runtime.settings.photos_path.rglob("*.jpg"))
        idem = key()
        photo = ("photos", ("a.jpg", jpeg_with_gps((64, 64)), "image/jpeg"))
        answer = submit(client, files=[photo], idem=idem, title="refuse me")
        assert answer.status_code == 503 and "Send it again" in answer.json()["detail"]
        assert scalar("SELECT count(*) FROM app.reports WHERE idempotency_key = :k", k=idem) == 0
        assert sorted(runtime.settings.photos_path.rglob("*.jpg")) == before
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_report ON app.reports"))
            conn.execute(text("DROP FUNCTION app.refuse_report()"))
    # The retry, once the database accepts it, makes the report.
    assert submit(client, files=[photo], idem=idem, title="refuse me").status_code == 201


def test_limits_per_address_and_device():
    from reports.limits import HourlyLimit

    limit = HourlyLimit(2)
    assert limit.spend("ip:a", "device:1") is None
    assert limit.spend("ip:b", "device:1") is None
    assert limit.spend("ip:c", "device:1") > 0  # the device is spent, whatever its address
    assert limit.spend("ip:a", "device:2") is None
    assert limit.spend("ip:a", None) > 0  # and so is the address


@pytest.fixture
def strict_server(runtime):
    """The same service with a limit of two submissions an hour, on its own port."""
    settings = runtime.settings.model_copy(update={"report_rate_limit": 2, "port": free_port()})
    strict = type(runtime)(settings=settings, catalogue=runtime.catalogue)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(strict), host=settings.host, port=settings.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield settings.base_url
    server.should_exit = True
    thread.join(timeout=10)
    strict.close()  # its own pools (the cluster is the suite's)


def test_rate_limit_answers_429(strict_server, client):
    made_key = key()
    made = submit(client, idem=made_key).json()
    with httpx.Client(base_url=strict_server, timeout=30) as http:
        url = f"/api/reports/{made['reference']}/me-too"
        assert http.post(url, data={"device_id": "device-one-1"}).status_code == 200
        assert http.post(url, data={"device_id": "device-two-2"}).status_code == 200
        third = http.post(url, data={"device_id": "device-three"})  # same address
        assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
        assert "Try again later" in third.json()["detail"]
        # A retry of a report already made is not counted against the limit.
        again = http.post("/api/reports", data=report_form(), headers={"Idempotency-Key": made_key})
        assert again.status_code == 200
