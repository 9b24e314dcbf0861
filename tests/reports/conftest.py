"""What the reports tests share: places inside and outside the borough, assets from the
loaded layers, a signed-in staff client, and photos made with Pillow (GPS EXIF and all)."""

import io
import re
import uuid

import httpx
import piexif
import pytest
from PIL import Image
from sqlalchemy import text

from mapserver.sessions import create_user

PASSWORD = "reports staff password"
INSIDE = {"lon": -2.1580, "lat": 53.4085}  # Stockport town centre
OUTSIDE = {"lon": -2.2440, "lat": 53.4800}  # Manchester city centre


def jpeg_with_gps(size=(1200, 900)) -> bytes:
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"PhoneCo"},
            "GPS": {
                piexif.GPSIFD.GPSLatitudeRef: b"N",
                piexif.GPSIFD.GPSLatitude: ((53, 1), (24, 1), (3600, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"W",
                piexif.GPSIFD.GPSLongitude: ((2, 1), (9, 1), (1800, 100)),
            },
        }
    )
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def key() -> str:
    return uuid.uuid4().hex


def report_form(**extra) -> dict:
    return {
        "category": "pothole",
        "title": "Pothole by the bus stop",
        "description": "About 10 cm deep.",
        **INSIDE,
        **extra,
    }


@pytest.fixture(scope="session")
def streetlight(engine):
    """One street light of the loaded layer: its id and lon/lat."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT central_asset_id AS asset_id, ST_X(ST_Transform(geom, 4326)) AS lon,"
                " ST_Y(ST_Transform(geom, 4326)) AS lat, ST_X(geom) AS x, ST_Y(geom) AS y"
                " FROM layers.streetlights ORDER BY fid LIMIT 1 OFFSET 500"
            )
        ).one()
    return row


@pytest.fixture(scope="session")
def staff_http(base_url, engine):
    """An httpx client signed in as staff, and its session's CSRF token."""
    create_user(engine, "reports-staff@example.gov.uk", "Street Officer", "staff", PASSWORD)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        page = http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = http.post(
            "/login",
            data={"email": "reports-staff@example.gov.uk", "password": PASSWORD,
                  "csrf_token": token, "next": "/"},
        )  # fmt: skip
        assert answer.status_code == 303
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/").text).group(1)
        yield http, csrf
