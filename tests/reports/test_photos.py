"""Photos are decoded and re-encoded: GPS EXIF gone, upright, shrunk, thumbnailed; a
file that is not really an image is refused whatever it claims to be."""

import io

import piexif
import pytest
from PIL import Image

from reports import photos

from .conftest import jpeg_with_gps


def test_gps_exif_is_removed_and_the_photo_turned_and_shrunk():
    upload = jpeg_with_gps((3000, 2000), orientation=6)
    assert piexif.load(upload)["GPS"]  # the upload carries a location
    clean = photos.clean(upload)
    stored = Image.open(io.BytesIO(clean.data))
    assert not stored.getexif() and "exif" not in stored.info
    assert piexif.load(clean.data)["GPS"] == {}
    # Orientation 6 (rotate 90°) is applied to the pixels, then the photo is shrunk.
    assert (clean.width, clean.height) == (1365, 2048) == stored.size
    assert max(Image.open(io.BytesIO(clean.thumbnail)).size) == photos.THUMB_SIDE


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_become_jpeg(fmt):
    out = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 255, 128)).save(out, fmt)
    clean = photos.clean(out.getvalue())
    assert Image.open(io.BytesIO(clean.data)).format == "JPEG"


def test_heic_is_accepted():
    from pillow_heif import from_pillow

    heif = from_pillow(Image.new("RGB", (64, 48), (10, 200, 10)))
    out = io.BytesIO()
    heif.save(out, quality=80)
    assert photos.clean(out.getvalue()).width == 64


@pytest.mark.parametrize(
    "upload",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"\xff\xd8\xff\xe0 not really a jpeg <script>alert(1)</script>",
        b"GIF89a" + b"\x00" * 100,
        b"%PDF-1.4 fake",
        b"",
    ],
)
def test_what_is_not_an_image_is_refused(upload):
    with pytest.raises(photos.PhotoRejected):
        photos.clean(upload)


def test_gif_is_refused_even_when_valid():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    with pytest.raises(photos.PhotoRejected):
        photos.clean(out.getvalue())


def test_too_big_is_refused():
    with pytest.raises(photos.PhotoRejected, match="10 MB"):
        photos.clean(b"\xff\xd8" + b"\x00" * (10 * 1024 * 1024))


def test_local_store_round_trip(tmp_path):
    store = photos.LocalStore(tmp_path)
    record = photos.save(store, photos.clean(jpeg_with_gps((100, 80))))
    assert store.get(record.store_key)[:2] == b"\xff\xd8"
    photos.discard(store, [record])
    assert store.get(record.store_key) is None and store.get(record.thumbnail_key) is None
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")
