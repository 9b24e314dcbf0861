"""Residents' photos: made safe (decoded, re-encoded, metadata removed, resized,
thumbnailed) and kept in a pluggable store.

Anything Pillow cannot decode as a JPEG, PNG, WebP or HEIC image is refused, whatever
its name or declared content type says. What is stored is always a fresh JPEG written
by Pillow from the decoded pixels: no EXIF (so no GPS), no ICC tricks, no trailing data.

Stores have one small interface (:class:`PhotoStore`): ``put``, ``get``, ``delete``.
:class:`LocalStore` writes files under ``photos_dir``; :class:`S3Store` writes objects
to an S3-compatible bucket (boto3, optional). :func:`photo_store` picks one from the
settings.
"""

import hashlib
import io
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from mapserver.settings import Settings
from reports.domain import MAX_PHOTO_BYTES
from reports.store import PhotoRecord

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF"}
MAX_SIDE = 2048  # longest side of the stored photo
THUMB_SIDE = 320
MAX_PIXELS = 50_000_000  # decompression bombs are refused, not decoded
JPEG_QUALITY = 85


class PhotoRejected(ValueError):
    """Not an image we accept; the message is for the resident."""


class PhotoStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class LocalStore:
    """Files under one directory; keys are relative paths made by :func:`new_key`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not key or ".." in key or key.startswith("/"):
            raise ValueError(f"bad photo key {key!r}")
        return self.directory / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the database commits its record
        partial.replace(path)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Objects in an S3-compatible bucket (AWS, MinIO, Ceph…), under ``prefix``."""

    def __init__(self, bucket: str, endpoint: str | None, prefix: str) -> None:
        import boto3  # optional: pip install council-mapserver[s3]

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )

    def get(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def photo_store(settings: Settings) -> PhotoStore:
    if settings.photos_s3_bucket:
        return S3Store(
            settings.photos_s3_bucket, settings.photos_s3_endpoint, settings.photos_s3_prefix
        )
    return LocalStore(settings.photos_path)


@dataclass(frozen=True)
class CleanPhoto:
    """A photo made safe, ready to store: the image and its thumbnail, both JPEG."""

    data: bytes
    thumbnail: bytes
    width: int
    height: int


def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


def clean(upload: bytes) -> CleanPhoto:
    """Decode ``upload`` (JPEG, PNG, WebP or HEIC), turn it upright, drop every piece of
    metadata, shrink it to :data:`MAX_SIDE` and re-encode it as JPEG with a thumbnail.
    Raises PhotoRejected for anything else, too big, or broken."""
    if len(upload) > MAX_PHOTO_BYTES:
        raise PhotoRejected(f"A photo must be {MAX_PHOTO_BYTES // (1024 * 1024)} MB or smaller.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload), formats=sorted(ACCEPTED_FORMATS)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoRejected("That photo has too many pixels.")
                # A JPEG at least twice the size kept decodes straight at a fraction of
                # its size (libjpeg's DCT scaling), for a fraction of the work.
                scale = MAX_SIDE / max(image.size)
                if scale < 1:
                    image.draft("RGB", (int(image.width * scale), int(image.height * scale)))
                image.load()
                # In place: a copy of every pixel is a good share of the cost of a photo.
                ImageOps.exif_transpose(image, in_place=True)
                # Only pixels travel on: a new image with no info, EXIF, XMP or ICC profile.
                pixels = Image.new("RGB", image.size)
                pixels.paste(image if image.mode == "RGB" else image.convert("RGB"))
    except PhotoRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected("That file is not a JPEG, PNG, WebP or HEIC photo.") from None
    except (OSError, ValueError, SyntaxError):
        raise PhotoRejected("That photo is damaged and cannot be read.") from None
    pixels.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # A small picture: shrunk by whole factors first by averaging (reducing_gap=1), then
    # bilinear: a quarter of the CPU of one Lanczos pass, and no different at 320 pixels.
    thumb = pixels.resize(
        _fit(pixels.size, THUMB_SIDE), Image.Resampling.BILINEAR, reducing_gap=1.0
    )
    return CleanPhoto(_jpeg(pixels), _jpeg(thumb), pixels.width, pixels.height)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` shrunk to fit a square of ``side`` (as Image.thumbnail does), never grown."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _jpeg(image: Image.Image) -> bytes:
    """``image`` (one of ours, with no info) as JPEG: nothing but the pixels is written."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def new_key() -> str:
    """A unique, unguessable key, spread over folders so none grows huge."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def save(store: PhotoStore, photo: CleanPhoto) -> PhotoRecord:
    """Write the photo and its thumbnail to the store; the record to insert with
    :func:`reports.store.add_photos`. On failure of the transaction, pass the record
    to :func:`discard`."""
    key = new_key()
    record = PhotoRecord(
        store_key=f"{key}.jpg",
        thumbnail_key=f"{key}-thumb.jpg",
        content_type="image/jpeg",
        width=photo.width,
        height=photo.height,
        bytes=len(photo.data),
        sha256=hashlib.sha256(photo.data).hexdigest(),
    )
    store.put(record.store_key, photo.data, record.content_type)
    store.put(record.thumbnail_key, photo.thumbnail, record.content_type)
    return record


def discard(store: PhotoStore, records: list[PhotoRecord]) -> None:
    """Remove files whose records were not committed (a failed or replayed submit)."""
    for record in records:
        store.delete(record.store_key)
        store.delete(record.thumbnail_key)
