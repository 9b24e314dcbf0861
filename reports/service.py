"""What the reports routes share, built once per app: the council's categories, the photo
store, the submission limits; and the steps of a submit that both the JSON API and the
pages use (validation, location checks, photos written before the commit)."""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import HTTPException, Request
from pyproj import Transformer
from sqlalchemy.engine import Connection, Engine

from layers.catalogue import Catalogue
from mapserver.search import place_in_council
from mapserver.settings import Settings
from reports import domain, photos, store
from reports.categories import Category, ReportsConfig, load_reports_config
from reports.limits import HourlyLimit

EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,189}\.[^@\s<>\"]{2,63}$")
PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")
# A retry or double click sends the same key: one report. It must be unguessable (the
# page makes a UUID4), because it also regenerates the reporter's secret link.
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{16,100}$")
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_NAME = 100


class Invalid(ValueError):
    """Bad input from a resident: ``errors`` maps a form field to its message."""

    def __init__(self, errors: dict[str, str], status: int = 422) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status


@dataclass
class Reports:
    settings: Settings
    engine: Engine
    catalogue: Catalogue
    config: ReportsConfig
    photo_store: photos.PhotoStore
    limit: HourlyLimit
    # Submits at once in this process, each on one connection: a flood waits here, not in
    # threads that each take a connection beyond the pool (opened and closed per use, each
    # new one paying PostGIS's set-up again), and two cores gain nothing from more. Half
    # the pool: the rest is for the rate limit and reads.
    submits: threading.BoundedSemaphore

    @property
    def prefix(self) -> str:
        return self.catalogue.council.reference_prefix

    def asset_links(self) -> dict[str, dict[str, str]]:
        """Asset layer -> the category its features are reported in, for map popups."""
        return {
            c.asset_layer: {"category": c.id, "idField": c.asset_id_field, "name": c.asset_name}
            for c in self.config.categories
            if c.asset_layer and c.asset_id_field
        }


def build(settings: Settings, engine: Engine, catalogue: Catalogue) -> Reports | None:
    """The reports service of this council, or None when it has no reports.yml."""
    config = load_reports_config(catalogue)
    if config is None:
        return None
    return Reports(
        settings=settings,
        engine=engine,
        catalogue=catalogue,
        config=config,
        photo_store=photos.photo_store(settings),
        limit=HourlyLimit(settings.report_rate_limit),
        submits=threading.BoundedSemaphore(max(1, settings.pool_size // 2)),
    )


def reports_of(request: Request) -> Reports:
    """The app's reports service; a 404 for a council that takes no reports."""
    service = getattr(request.app.state, "reports", None)
    if service is None:
        raise HTTPException(404, "This council does not take fault reports here.")
    return service


@lru_cache(maxsize=1)
def _to_lonlat() -> Transformer:
    return Transformer.from_crs(27700, 4326, always_xy=True)


def to_lonlat(point: store.Point) -> tuple[float, float]:
    return _to_lonlat().transform(point.x, point.y)


def coordinate(value: Any, name: str, low: float, high: float) -> float:  # noqa: ANN401
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid({"location": "Choose a place on the map, or search for one."}) from None
    if not low <= number <= high:
        raise Invalid({"location": f"{name} must be between {low} and {high}."})
    return number


def clean_text(value: Any, field: str, label: str, limit: int, required: bool = False) -> str:  # noqa: ANN401
    """Trimmed text without control characters (newlines and tabs kept)."""
    text = "" if value is None else str(value)
    text = "".join(c for c in text if c in "\n\t" or c.isprintable()).strip()
    if required and not text:
        raise Invalid({field: f"Enter {label}."})
    if len(text) > limit:
        raise Invalid(
            {field: f"{label[0].upper()}{label[1:]} must be {limit} characters or fewer."}
        )
    return text


def category_of(service: Reports, category_id: Any) -> Category:  # noqa: ANN401
    category = service.config.category(str(category_id or ""))
    if category is None:
        raise Invalid({"category": "Choose what the problem is."})
    return category


def locate(
    service: Reports,
    conn: Connection,
    category: Category | None,
    lon: float,
    lat: float,
    asset_id: str | None,
) -> store.Place:
    """Check a chosen place: inside the council (otherwise Invalid naming the neighbour),
    on the named asset (its own location wins), or snapped to the category's nearest asset
    within :data:`domain.ASSET_SNAP_METRES`; with the ward it is in."""
    where = place_in_council(conn, service.catalogue, lon, lat)
    if not where["inside"]:
        raise Invalid({"location": where["message"]})
    found = store.place(
        conn, service.catalogue, service.config, category, lon, lat, asset_id=asset_id
    )
    if found is None:
        assert category is not None
        raise Invalid({"asset_id": f"There is no {category.asset_name} {asset_id}."})
    return found


def photo_uploads(
    service: Reports, uploads: list[bytes], names: list[str]
) -> list[photos.CleanPhoto]:
    if len(uploads) > domain.MAX_PHOTOS:
        raise Invalid({"photos": f"Add up to {domain.MAX_PHOTOS} photos."})
    cleaned = []
    for data, name in zip(uploads, names, strict=True):
        try:
            cleaned.append(photos.clean(data))
        except photos.PhotoRejected as exc:
            raise Invalid({"photos": f"{name}: {exc}"}) from None
    return cleaned


@contextmanager
def photos_written(
    service: Reports, cleaned: list[photos.CleanPhoto]
) -> Iterator[list[store.PhotoRecord]]:
    """Write the photos before the transaction that records them; remove them again if
    that transaction fails (the body raises) so no file is left without a record."""
    records: list[store.PhotoRecord] = []
    try:
        for photo in cleaned:
            records.append(photos.save(service.photo_store, photo))
        yield records
    except BaseException:
        photos.discard(service.photo_store, records)
        raise
