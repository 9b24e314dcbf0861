"""Where a load's data comes from: a local path or an http(s) URL, zipped or not.

URLs are downloaded to a temporary file with a size limit and a timeout. Zip files are
checked before anything is extracted: no absolute paths or ``..`` (path traversal), no
links, and a bounded total size and expansion ratio (zip bombs).
"""

import hashlib
import shutil
import stat
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mapserver.errors import ServiceError

if TYPE_CHECKING:
    import httpx

MAX_DOWNLOAD_BYTES = 2 * 1024**3
MAX_UNZIPPED_BYTES = 8 * 1024**3
MAX_EXPANSION_RATIO = 200
DOWNLOAD_TIMEOUT_S = 60.0
# Spatial formats we read, in the order we pick a member of a zip file.
SPATIAL_SUFFIXES = (
    ".gpkg", ".shp", ".geojson", ".json", ".geojsonl", ".geojsons", ".ndjson",
    ".gml", ".kml", ".csv",
)  # fmt: skip


@dataclass
class LocalSource:
    """A readable file for the loader, with what identifies its version."""

    path: Path
    uri: str
    digest: "Future[str]"  # the sha256, hashed in a thread of its own while the file is read
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False  # the server answered 304 to a conditional request

    @property
    def sha256(self) -> str:
        return self.digest.result()


def is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hashing(path: Path) -> "Future[str]":
    """The file's sha256, computed in a thread (hashlib releases the GIL): a load reads
    the file meanwhile, and records the digest at its end (a tenth of a second on 50 MB)."""
    future: Future[str] = Future()

    def run() -> None:
        try:
            future.set_result(sha256_of(path))
        except BaseException as exc:  # raised to whoever asks for the digest
            future.set_exception(exc)

    threading.Thread(target=run, name="load-sha256", daemon=True).start()
    return future


def _done(value: str) -> "Future[str]":
    future: Future[str] = Future()
    future.set_result(value)
    return future


def download(
    url: str,
    target: Path,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    headers: dict[str, str] | None = None,
) -> "httpx.Response":
    """Stream ``url`` into ``target``; refuse what is too large or too slow."""
    import httpx  # a tenth of a second: only for a URL

    try:
        with httpx.stream(
            "GET", url, timeout=timeout, follow_redirects=True, headers=headers or {}
        ) as response:
            if response.status_code == 304:
                return response
            if response.status_code != 200:
                raise ServiceError(f"Downloading {url} failed: HTTP {response.status_code}.")
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise ServiceError(
                    f"{url} is {declared / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit."
                )
            received = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    received += len(chunk)
                    if received > max_bytes:
                        raise ServiceError(
                            f"{url} is larger than the {max_bytes / 1e6:.0f} MB limit; "
                            "download stopped."
                        )
                    out.write(chunk)
            return response
    except httpx.TimeoutException:
        raise ServiceError(f"Downloading {url} timed out after {timeout:.0f} s.") from None
    except httpx.HTTPError as exc:
        raise ServiceError(f"Downloading {url} failed: {exc}.") from None


def _safe_members(archive: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    members = [m for m in archive.infolist() if not m.is_dir()]
    total = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    for member in members:
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise ServiceError(
                f"{name} holds a file outside the archive ({member.filename}): refused."
            )
        if stat.S_ISLNK(member.external_attr >> 16):
            raise ServiceError(f"{name} holds a symbolic link ({member.filename}): refused.")
    if total > MAX_UNZIPPED_BYTES or total / packed > MAX_EXPANSION_RATIO:
        raise ServiceError(
            f"{name} would expand to {total / 1e6:.0f} MB ({total / packed:.0f}× its size): "
            "refused as a possible zip bomb."
        )
    return members


def unzip(path: Path, into: Path, member: str | None = None) -> Path:
    """Extract a checked zip file; return the spatial file inside it (or ``member``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = _safe_members(archive, path.name)
            archive.extractall(into, members=members)
    except zipfile.BadZipFile:
        raise ServiceError(f"{path.name} is not a readable zip file.") from None
    files = sorted(p for p in into.rglob("*") if p.is_file())
    if member:
        chosen = [p for p in files if p.name == member]
    else:
        chosen = next(
            ([p for p in files if p.suffix.lower() == s] for s in SPATIAL_SUFFIXES
             if any(p.suffix.lower() == s for p in files)),
            [],
        )  # fmt: skip
    if not chosen:
        raise ServiceError(f"{path.name} holds no spatial file ({', '.join(SPATIAL_SUFFIXES)}).")
    return chosen[0]


@contextmanager
def open_source(
    location: str | Path,
    *,
    member: str | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Iterator[LocalSource]:
    """A local, unzipped copy of ``location`` for the length of the ``with`` block.
    With ``etag``/``last_modified`` a URL is fetched only if it changed since."""
    workdir = Path(tempfile.mkdtemp(prefix="mapserver-load-"))
    try:
        text = str(location)
        if is_url(text):
            name = Path(urlparse(text).path).name or "download"
            path = workdir / name
            conditions = {"If-None-Match": etag or "", "If-Modified-Since": last_modified or ""}
            response = download(
                text, path, max_bytes=max_bytes, timeout=timeout,
                headers={k: v for k, v in conditions.items() if v},
            )  # fmt: skip
            if response.status_code == 304:
                yield LocalSource(path, text, _done(""), etag, last_modified, not_modified=True)
                return
            etag = response.headers.get("etag")
            last_modified = response.headers.get("last-modified")
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise ServiceError(f"Source file {path} does not exist.")
        digest = _hashing(path)
        readable = path
        if path.suffix.lower() == ".zip":
            readable = unzip(path, workdir / "unzipped", member)
        yield LocalSource(
            path=readable, uri=text, digest=digest, etag=etag, last_modified=last_modified
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
