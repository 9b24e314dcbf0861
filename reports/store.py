"""Every read and write of fault reports: the one place their SQL lives.

Each function takes an open SQLAlchemy ``Connection`` and never commits: the caller
holds the transaction (``with engine.begin() as conn:``), so a report, its photos'
records, its first history row and the emails it causes commit together or not at all.
Emails are rows in ``app.email_outbox`` (see :func:`queue_email`), written in the same
transaction as the change that causes them; a worker sends them.

Locations are :class:`Point` in British National Grid (EPSG:27700), the storage CRS.
Parameters only: no user text is ever formatted into SQL (identifiers that are, such as
an asset layer's table, come from the validated catalogue).
"""

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import TextClause

from layers.catalogue import Catalogue
from reports import domain, emails
from reports.categories import Category, ReportsConfig
from reports.domain import State, TransitionError


@dataclass(frozen=True)
class Point:
    """A location in British National Grid metres."""

    x: float
    y: float


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a staff user (``user_id``), the reporter, or a council system
    pushing updates with an API key (``user_id`` None, still the council)."""

    name: str
    user_id: int | None = None
    council: bool = True


REPORTER = Actor("Reporter", council=False)


@dataclass(frozen=True)
class PhotoRecord:
    """A photo already written to the photo store (see :mod:`reports.photos`)."""

    store_key: str
    thumbnail_key: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class NewReport:
    """A resident's report, already validated (see :mod:`reports.api`)."""

    category: Category
    point: Point
    title: str
    description: str = ""
    answers: dict[str, Any] = field(default_factory=dict)
    asset_layer: str | None = None
    asset_id: str | None = None
    reporter_name: str | None = None
    reporter_email: str | None = None
    reporter_phone: str | None = None
    show_name: bool = False
    idempotency_key: str | None = None
    device_id: str | None = None
    source: str = "web"


@dataclass(frozen=True)
class Created:
    id: int
    reference: str
    # The reporter's secret link token (only its hash is stored). A retry with the same
    # idempotency key gets it again; None for a retry of a report made without a key.
    token: str | None
    replayed: bool = False  # an earlier request with the same key made the report


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def reporter_token(idempotency_key: str | None) -> str:
    """The reporter's secret: derived from the idempotency key when there is one, so that
    a retry whose first answer was lost still gets the link (the key is itself a secret
    only that browser holds: see reports.api.IDEMPOTENCY_KEY); random otherwise."""
    if not idempotency_key:
        return secrets.token_urlsafe(24)
    digest = hashlib.sha256(f"reporter-token:{idempotency_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


# Columns every reader of one report gets, with the location in both CRSs.
REPORT_COLUMNS = """
r.id, r.reference, r.category, r.service_code, r.state, r.ward_code, r.ward,
r.asset_layer, r.asset_id, r.title, r.description, r.reporter_name, r.reporter_email,
r.reporter_phone, r.show_name, r.answers, r.team, r.interest_count, r.duplicate_of,
(SELECT d.reference FROM app.reports d WHERE d.id = r.duplicate_of) AS duplicate_reference,
r.hidden, r.source, r.created_at, r.updated_at, r.first_response_at, r.fixed_at,
r.closed_at, ST_X(r.geom) AS x, ST_Y(r.geom) AS y,
ST_X(ST_Transform(r.geom, 4326)) AS lon, ST_Y(ST_Transform(r.geom, 4326)) AS lat
"""

# A new report in one statement (one round trip, atomic even without a transaction
# around it): the report with its reference (``PREFIX-YEAR-000123``: the id, at least six
# digits, unique across years so no counter row is locked), its first history row, its
# photos' records and, with an email, the reporter's subscription and confirmation. The
# email's text has REFERENCE where the reference goes. A key already used inserts nothing.
INSERT_REPORT = """
WITH new AS (SELECT nextval(pg_get_serial_sequence('app.reports', 'id')) AS id),
report AS (
    INSERT INTO app.reports (
        id, reference, category, service_code, geom, ward_code, ward, asset_layer, asset_id,
        title, description, reporter_name, reporter_email, reporter_phone, show_name,
        answers, team, idempotency_key, device_id, reporter_token_hash, source)
    OVERRIDING SYSTEM VALUE
    SELECT
        new.id,
        concat_ws('-', :prefix, :year, lpad(new.id::text, greatest(6, length(new.id::text)), '0')),
        :category, :service_code, ST_SetSRID(ST_MakePoint(:x, :y), 27700), :ward_code, :ward,
        :asset_layer, :asset_id, :title, :description, :reporter_name, :reporter_email,
        :reporter_phone, :show_name, CAST(:answers AS jsonb), :team, :idempotency_key,
        :device_id, :token_hash, :source
    FROM new
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, reference
),
history AS (
    INSERT INTO app.report_states (report_id, from_state, state, changed_by)
    SELECT id, NULL, :state, :changed_by FROM report
),
pictures AS (
    INSERT INTO app.report_photos (report_id, position, store_key, thumbnail_key,
        content_type, width, height, bytes, sha256)
    SELECT report.id, p.position, p.store_key, p.thumbnail_key, p.content_type, p.width,
        p.height, p.bytes, p.sha256
    FROM report, jsonb_to_recordset(CAST(:photos AS jsonb)) AS p(position smallint,
        store_key text, thumbnail_key text, content_type text, width int, height int,
        bytes int, sha256 text)
),
subscription AS (
    INSERT INTO app.report_subscribers (report_id, email, is_reporter, unsubscribe_token_hash)
    SELECT id, :reporter_email, true, :unsubscribe_hash FROM report
    WHERE CAST(:reporter_email AS text) IS NOT NULL
),
confirmation AS (
    INSERT INTO app.email_outbox (to_address, subject, body, kind, report_id)
    SELECT :to_address, replace(:subject, :placeholder, reference),
        replace(:body, :placeholder, reference), 'confirmation', id FROM report
    WHERE CAST(:reporter_email AS text) IS NOT NULL
)
SELECT id, reference FROM report
"""
# Stands for the reference in the confirmation email until the statement knows it: a
# control character, which clean text (titles, names) never holds.
REFERENCE = "\x01reference\x01"


class Ward(NamedTuple):
    """The ward a report is in (both None without a ward layer, or outside every ward)."""

    code: str | None
    name: str | None


@dataclass(frozen=True)
class Place:
    """Where a report goes: on the asset (its location), else where the pin is."""

    point: Point
    lon: float
    lat: float
    asset_id: str | None  # the asset it is on: the one named, or the nearest
    ward: Ward


def place(
    conn: Connection,
    catalogue: Catalogue,
    config: ReportsConfig,
    category: Category | None,
    lon: float,
    lat: float,
    *,
    asset_id: str | None = None,
    metres: float = domain.ASSET_SNAP_METRES,
) -> Place | None:
    """One query for a chosen place (already checked to be inside the council): the point
    in British National Grid; the category's asset named ``asset_id`` (None when there is
    no such asset), or else its nearest within ``metres``, whose location wins (a dropped
    pin snaps to it); and the ward (code, name) there, both None without a ward layer.
    PostGIS transforms the point: its set-up is paid once per pooled connection, where
    pyproj pays ~30 ms in every new worker thread."""
    layer = category.asset_layer if category else None
    if layer and category:
        table, field = catalogue.layers[layer].table_name, category.asset_id_field
        which = (
            f'WHERE "{field}"::text = :asset_id'
            if asset_id
            else "WHERE ST_DWithin(a.geom, here.geom, :metres) ORDER BY a.geom <-> here.geom"
        )
        asset = f'SELECT "{field}"::text AS id, a.geom FROM layers."{table}" a, here {which}'
    else:
        asset = "SELECT NULL::text AS id, NULL::geometry AS geom WHERE false"
    ward = "SELECT NULL::text AS code, NULL::text AS name"
    if config.ward_layer:
        wards = catalogue.layers[config.ward_layer].table_name
        code = f'"{config.ward_code_field}"' if config.ward_code_field else "NULL"
        name = f'"{config.ward_name_field}"' if config.ward_name_field else "NULL"
        ward = (
            f'SELECT {code}::text AS code, {name}::text AS name FROM layers."{wards}" w'
            " WHERE ST_Intersects(w.geom, spot.geom)"
        )
    row = conn.execute(
        _text(
            "WITH here AS (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),"
            f" 27700) AS geom), asset AS ({asset} LIMIT 1),"
            " spot AS (SELECT coalesce((SELECT geom FROM asset), here.geom) AS geom FROM here)"
            " SELECT (SELECT id FROM asset) AS asset_id, ST_X(spot.geom) AS x,"
            " ST_Y(spot.geom) AS y, ST_X(ST_Transform(spot.geom, 4326)) AS lon,"
            " ST_Y(ST_Transform(spot.geom, 4326)) AS lat, ward.code, ward.name"
            f" FROM spot LEFT JOIN LATERAL ({ward} LIMIT 1) AS ward ON true"
        ),
        {"lon": lon, "lat": lat, "asset_id": asset_id, "metres": metres},
    ).one()
    if asset_id and row.asset_id is None:
        return None
    where = (row.lon, row.lat) if row.asset_id else (lon, lat)
    return Place(Point(row.x, row.y), *where, row.asset_id, Ward(row.code, row.name))


@lru_cache(maxsize=256)
def _text(sql: str) -> TextClause:
    """A statement parsed once (text() parses its binds each time): for the hot ones."""
    return text(sql)


def create_report(
    conn: Connection,
    new: NewReport,
    *,
    prefix: str,
    ward: "Ward",
    photos: list[PhotoRecord] = (),  # type: ignore[assignment]
    report_url: str,
) -> Created:
    """Insert a report with its photos' records, its first history row, the reporter's
    subscription and confirmation email (when an email was given): one statement, so a
    caller without a transaction of its own still gets all or nothing.

    Idempotent on ``new.idempotency_key``: when a report with that key exists (a retry,
    a double click, or the same request racing itself), nothing is written and that
    report is returned with ``replayed=True``; the caller then deletes the photo files
    it wrote for this attempt. ``report_url`` is the reporter's page URL with ``{reference}``
    and ``{token}`` where the reference and secret go (for the confirmation email).
    """
    token = reporter_token(new.idempotency_key)
    email = new.reporter_email.lower() if new.reporter_email else None
    subject, body = emails.confirmation(
        REFERENCE,
        new.title,
        report_url.format(reference=REFERENCE, token=token),
        new.category.name,
    )
    inserted = conn.execute(
        _text(INSERT_REPORT),
        {
            "prefix": prefix,
            "year": datetime.now(UTC).year,
            "category": new.category.id,
            "service_code": new.category.service_code,
            "x": new.point.x,
            "y": new.point.y,
            "ward_code": ward.code,
            "ward": ward.name,
            "asset_layer": new.asset_layer,
            "asset_id": new.asset_id,
            "title": new.title,
            "description": new.description,
            "reporter_name": new.reporter_name,
            "reporter_email": email,
            "to_address": new.reporter_email,
            "reporter_phone": new.reporter_phone,
            "show_name": new.show_name,
            "answers": json.dumps(new.answers, ensure_ascii=False),
            "team": new.category.team,
            "idempotency_key": new.idempotency_key,
            "device_id": new.device_id,
            "token_hash": hash_token(token),
            "source": new.source,
            "state": State.OPEN.value,
            "changed_by": REPORTER.name,
            "photos": json.dumps(
                [
                    {
                        "position": position,
                        "store_key": photo.store_key,
                        "thumbnail_key": photo.thumbnail_key,
                        "content_type": photo.content_type,
                        "width": photo.width,
                        "height": photo.height,
                        "bytes": photo.bytes,
                        "sha256": photo.sha256,
                    }
                    for position, photo in enumerate(photos)
                ]
            ),
            "unsubscribe_hash": hash_token(secrets.token_urlsafe(24)),
            "subject": subject,
            "body": body,
            "placeholder": REFERENCE,
        },
    ).one_or_none()
    if inserted is None:  # an earlier request (or a concurrent one) made it with this key
        existing = find_by_idempotency_key(conn, new.idempotency_key or "")
        assert existing is not None
        return existing
    return Created(inserted.id, inserted.reference, token)


def find_by_idempotency_key(conn: Connection, key: str) -> Created | None:
    """The report an earlier request with this key made, if any (checked before the
    expensive work of a submit: photos need not be processed twice)."""
    row = conn.execute(
        _text("SELECT id, reference FROM app.reports WHERE idempotency_key = :key"),
        {"key": key},
    ).one_or_none()
    return Created(row.id, row.reference, reporter_token(key), replayed=True) if row else None


def add_photos(
    conn: Connection, report_id: int, photos: list[PhotoRecord], update_id: int | None = None
) -> None:
    """Records of photos already in the photo store, in the order given."""
    for position, photo in enumerate(photos):
        conn.execute(
            text(
                "INSERT INTO app.report_photos (report_id, update_id, position, store_key,"
                " thumbnail_key, content_type, width, height, bytes, sha256) VALUES"
                " (:report, :update, :position, :key, :thumb, :type, :w, :h, :bytes, :sha)"
            ),
            {
                "report": report_id,
                "update": update_id,
                "position": position,
                "key": photo.store_key,
                "thumb": photo.thumbnail_key,
                "type": photo.content_type,
                "w": photo.width,
                "h": photo.height,
                "bytes": photo.bytes,
                "sha": photo.sha256,
            },
        )


def get_report(conn: Connection, reference: str) -> Row | None:
    """One report by its reference (every column: callers decide what to show)."""
    return conn.execute(
        text(f"SELECT {REPORT_COLUMNS} FROM app.reports r WHERE r.reference = :ref"),
        {"ref": reference},
    ).one_or_none()


def get_report_by_id(conn: Connection, report_id: int, *, lock: bool = False) -> Row | None:
    """One report by id; ``lock`` takes a row lock for a read-then-write change."""
    suffix = " FOR UPDATE OF r" if lock else ""
    return conn.execute(
        text(f"SELECT {REPORT_COLUMNS} FROM app.reports r WHERE r.id = :id{suffix}"),
        {"id": report_id},
    ).one_or_none()


def token_matches(conn: Connection, report_id: int, token: str) -> bool:
    """Is ``token`` the reporter's secret for this report?"""
    return bool(
        conn.execute(
            text("SELECT 1 FROM app.reports WHERE id = :id AND reporter_token_hash = :hash"),
            {"id": report_id, "hash": hash_token(token)},
        ).first()
    )


def history(conn: Connection, report_id: int) -> list[Row]:
    """Every state the report has been in, oldest first: (from_state, state, changed_by,
    user_id, created_at)."""
    return conn.execute(
        text(
            "SELECT from_state, state, changed_by, user_id, created_at FROM app.report_states"
            " WHERE report_id = :id ORDER BY id"
        ),
        {"id": report_id},
    ).all()


def updates(conn: Connection, report_id: int, *, internal: bool = False) -> list[Row]:
    """The report's updates, oldest first. The public sees public and resident updates
    that are not hidden; ``internal=True`` (staff) gets every one."""
    where = "" if internal else " AND kind <> 'internal' AND NOT hidden"
    return conn.execute(
        text(
            "SELECT u.id, u.kind, u.body, u.author, u.user_id, u.hidden, u.created_at,"
            " s.state AS new_state FROM app.report_updates u"
            " LEFT JOIN app.report_states s ON s.id = u.state_id"
            f" WHERE u.report_id = :id{where} ORDER BY u.id"
        ),
        {"id": report_id},
    ).all()


def photos(conn: Connection, report_id: int, *, hidden: bool = False) -> list[Row]:
    """The report's photos (``hidden=True`` includes hidden ones, for staff)."""
    where = "" if hidden else " AND NOT hidden"
    return conn.execute(
        text(
            "SELECT id, update_id, store_key, thumbnail_key, content_type, width, height,"
            f" hidden FROM app.report_photos WHERE report_id = :id{where}"
            " ORDER BY update_id NULLS FIRST, position"
        ),
        {"id": report_id},
    ).all()


def photo(conn: Connection, photo_id: int) -> Row | None:
    """One photo with its report's hidden flag (a hidden report's photos are not public)."""
    return conn.execute(
        text(
            "SELECT p.id, p.report_id, p.store_key, p.thumbnail_key, p.content_type, p.hidden,"
            " r.hidden AS report_hidden FROM app.report_photos p"
            " JOIN app.reports r ON r.id = p.report_id WHERE p.id = :id"
        ),
        {"id": photo_id},
    ).one_or_none()


def nearby_open(
    conn: Connection,
    category: Category,
    point: Point,
    *,
    asset_id: str | None = None,
    metres: float = domain.NEARBY_METRES,
    limit: int = 10,
) -> list[Row]:
    """Open, public reports of ``category`` on the same asset or within ``metres`` of
    ``point``, nearest first: the "Is this it?" list shown before a new report. Only
    public fields (the rounded location, no personal data)."""
    return conn.execute(
        text(
            "SELECT r.id, r.reference, r.title, r.state, r.interest_count, r.created_at,"
            " r.asset_id, ST_Distance(r.geom, p.g) AS distance,"
            " ST_X(ST_Transform(ST_SnapToGrid(r.geom, :grid), 4326)) AS lon,"
            " ST_Y(ST_Transform(ST_SnapToGrid(r.geom, :grid), 4326)) AS lat"
            " FROM app.reports r, (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 27700) AS g) p"
            " WHERE r.category = :category AND r.state = ANY(:open) AND NOT r.hidden"
            # Both sides indexed (reports_geom, reports_asset): a bitmap OR, no scan.
            " AND (ST_DWithin(r.geom, p.g, :metres)"
            "      OR (r.asset_layer = :layer AND r.asset_id = :asset))"
            " ORDER BY (r.asset_id IS NOT DISTINCT FROM :asset) DESC, r.geom <-> p.g"
            " LIMIT :limit"
        ),
        {
            "x": point.x,
            "y": point.y,
            "grid": domain.PUBLIC_GRID_M,
            "category": category.id,
            "open": [str(s) for s in domain.OPEN_STATES],
            "metres": metres,
            "asset": asset_id,
            "layer": category.asset_layer,
            "limit": limit,
        },
    ).all()


def subscribe(
    conn: Connection, report_id: int, email: str, *, is_reporter: bool = False
) -> str | None:
    """Subscribe ``email`` to the report's news; returns the unsubscribe token, or None
    when the address was already subscribed (a second subscription renews nothing)."""
    token = secrets.token_urlsafe(24)
    created = conn.execute(
        text(
            "INSERT INTO app.report_subscribers (report_id, email, is_reporter,"
            " unsubscribe_token_hash) VALUES (:id, lower(:email), :reporter, :hash)"
            " ON CONFLICT (report_id, email) DO UPDATE SET unsubscribed_at = NULL"
            " WHERE app.report_subscribers.unsubscribed_at IS NOT NULL"
            " RETURNING (xmax = 0) AS fresh"
        ),
        {
            "id": report_id,
            "email": email.strip(),
            "reporter": is_reporter,
            "hash": hash_token(token),
        },
    ).one_or_none()
    return token if created and created.fresh else None


def unsubscribe(conn: Connection, token: str) -> bool:
    """Stop emails for the subscription holding ``token`` (from an email's link)."""
    return bool(
        conn.execute(
            text(
                "UPDATE app.report_subscribers SET unsubscribed_at = now()"
                " WHERE unsubscribe_token_hash = :hash AND unsubscribed_at IS NULL"
            ),
            {"hash": hash_token(token)},
        ).rowcount
    )


def subscribers(conn: Connection, report_id: int) -> list[str]:
    """Addresses to tell about the report's news (the reporter's included)."""
    return list(
        conn.execute(
            text(
                "SELECT email FROM app.report_subscribers"
                " WHERE report_id = :id AND unsubscribed_at IS NULL ORDER BY id"
            ),
            {"id": report_id},
        ).scalars()
    )


def me_too(conn: Connection, report_id: int, email: str | None) -> int | None:
    """A resident has the same problem: one more interest and, with an email, a
    subscription, instead of a duplicate report. Returns the new interest count, or None
    when the report is not open (a closed one cannot be joined)."""
    count = conn.execute(
        text(
            "UPDATE app.reports SET interest_count = interest_count + 1"
            " WHERE id = :id AND state = ANY(:open) AND NOT hidden RETURNING interest_count"
        ),
        {"id": report_id, "open": [str(s) for s in domain.OPEN_STATES]},
    ).scalar_one_or_none()
    if count is not None and email:
        subscribe(conn, report_id, email)
    return count


def queue_email(
    conn: Connection, to: str, subject: str, body: str, kind: str, report_id: int | None
) -> int:
    """One email into the outbox, sent later by the worker. Call it inside the
    transaction of the change it announces, so neither exists without the other."""
    return conn.execute(
        text(
            "INSERT INTO app.email_outbox (to_address, subject, body, kind, report_id)"
            " VALUES (:to, :subject, :body, :kind, :report) RETURNING id"
        ),
        {"to": to, "subject": subject, "body": body, "kind": kind, "report": report_id},
    ).scalar_one()


def _record_state(
    conn: Connection, report_id: int, old: State | None, new: State, by: Actor
) -> int:
    return conn.execute(
        text(
            "INSERT INTO app.report_states (report_id, from_state, state, changed_by, user_id)"
            " VALUES (:id, :old, :new, :by, :user) RETURNING id"
        ),
        {"id": report_id, "old": old, "new": new, "by": by.name, "user": by.user_id},
    ).scalar_one()


def _tell_subscribers(conn: Connection, report: Row, subject: str, body: str, kind: str) -> None:
    for address in subscribers(conn, report.id):
        queue_email(conn, address, subject, body, kind, report.id)


def _set_state(
    conn: Connection,
    report: Row,
    new: State,
    by: Actor,
    note: str | None,
    duplicate_of: int | None = None,
) -> int:
    """Move the locked ``report`` to ``new``: the row, its history, a public update with
    the note (when given), and an email to every subscriber."""
    conn.execute(
        text(
            "UPDATE app.reports SET state = :new, duplicate_of = :dup, updated_at = now(),"
            " fixed_at = CASE WHEN :new = 'fixed' THEN now() ELSE fixed_at END,"
            " closed_at = CASE WHEN :new = ANY(:open) THEN NULL"
            "                  WHEN :new <> 'fixed' THEN now() ELSE closed_at END,"
            " first_response_at = CASE WHEN :council"
            "                     THEN coalesce(first_response_at, now())"
            "                     ELSE first_response_at END"
            " WHERE id = :id"
        ),
        {
            "id": report.id,
            "new": str(new),
            "dup": duplicate_of,
            "open": [str(s) for s in domain.OPEN_STATES],
            "council": by.council,
        },
    )
    state_id = _record_state(conn, report.id, State(report.state), new, by)
    kind = "public" if by.council else "resident"
    if note:
        _insert_update(conn, report.id, kind, note, by, state_id)
    subject, body = emails.state_changed(report.reference, report.title, new, note)
    _tell_subscribers(conn, report, subject, body, "state_change")
    return state_id


def change_state(
    conn: Connection, report_id: int, new: State, by: Actor, note: str | None = None
) -> Row:
    """A staff member moves a report to ``new`` (see :data:`domain.STAFF_TRANSITIONS`),
    with an optional public note. Raises LookupError for an unknown report and
    TransitionError for a move the rules forbid. Returns the report as it now is."""
    report = get_report_by_id(conn, report_id, lock=True)
    if report is None:
        raise LookupError(report_id)
    domain.check_staff_transition(State(report.state), new)
    _set_state(conn, report, new, by, note)
    return get_report_by_id(conn, report_id)  # type: ignore[return-value]


def mark_duplicate(conn: Connection, report_id: int, of_id: int, by: Actor) -> Row:
    """Mark a report as a duplicate of another (open or not): the link is kept, its
    subscribers move to the original and its interest is added there."""
    report = get_report_by_id(conn, report_id, lock=True)
    original = get_report_by_id(conn, of_id, lock=True)
    if report is None or original is None:
        raise LookupError(report_id if report is None else of_id)
    if report_id == of_id or original.duplicate_of == report_id:
        raise TransitionError("A report cannot be a duplicate of itself.")
    if original.state == State.DUPLICATE:
        raise TransitionError(f"{original.reference} is itself a duplicate: link to its original.")
    if State(report.state) not in domain.OPEN_STATES:
        raise TransitionError("Only an open report can be marked as a duplicate.")
    _set_state(conn, report, State.DUPLICATE, by, f"Duplicate of {original.reference}.", of_id)
    conn.execute(
        text("UPDATE app.reports SET interest_count = interest_count + 1 + :extra WHERE id = :of"),
        {"of": of_id, "extra": report.interest_count},
    )
    for address in subscribers(conn, report_id):
        subscribe(conn, of_id, address)
    return get_report_by_id(conn, report_id)  # type: ignore[return-value]


def _insert_update(
    conn: Connection, report_id: int, kind: str, body: str, by: Actor, state_id: int | None
) -> int:
    return conn.execute(
        text(
            "INSERT INTO app.report_updates (report_id, kind, body, author, user_id, state_id)"
            " VALUES (:id, :kind, :body, :author, :user, :state) RETURNING id"
        ),
        {
            "id": report_id,
            "kind": kind,
            "body": body,
            "author": by.name,
            "user": by.user_id,
            "state": state_id,
        },
    ).scalar_one()


def add_update(
    conn: Connection,
    report_id: int,
    kind: str,
    body: str,
    by: Actor,
    photos: list[PhotoRecord] = (),  # type: ignore[assignment]
) -> int:
    """An update without a state change: ``public`` (staff, seen by all, subscribers
    emailed), ``internal`` (staff only, nobody emailed) or ``resident`` (the reporter,
    public; staff are not emailed, they see it in the queue). Returns its id."""
    if kind not in ("public", "internal", "resident"):
        raise ValueError(f"unknown update kind {kind!r}")
    report = get_report_by_id(conn, report_id, lock=True)
    if report is None:
        raise LookupError(report_id)
    update_id = _insert_update(conn, report_id, kind, body, by, None)
    add_photos(conn, report_id, photos, update_id)
    first = " first_response_at = coalesce(first_response_at, now())," if by.council else ""
    conn.execute(
        text(f"UPDATE app.reports SET{first} updated_at = now() WHERE id = :id"), {"id": report_id}
    )
    if kind == "public":
        subject, body_text = emails.updated(report.reference, report.title, body)
        _tell_subscribers(conn, report, subject, body_text, "update")
    return update_id


def resident_update(
    conn: Connection,
    report_id: int,
    body: str,
    *,
    reopen: bool,
    photos: list[PhotoRecord] = (),  # type: ignore[assignment]
    now: datetime | None = None,
) -> Row:
    """The reporter (holding the secret link) adds an update, or reopens a report fixed
    less than eight weeks ago (see :func:`domain.can_reopen`). Raises TransitionError
    when the rules do not allow it. The caller checks the token first."""
    report = get_report_by_id(conn, report_id, lock=True)
    if report is None:
        raise LookupError(report_id)
    now = now or datetime.now(UTC)
    state = State(report.state)
    if reopen:
        if not domain.can_reopen(state, report.fixed_at, now):
            raise TransitionError(
                "A report can be reopened only within 8 weeks of being marked fixed."
            )
        _set_state(conn, report, State.OPEN, REPORTER, body)
        update_id = None
    else:
        if not domain.reporter_may_update(state, report.fixed_at, now):
            raise TransitionError("This report is closed to updates.")
        update_id = _insert_update(conn, report_id, "resident", body, REPORTER, None)
        conn.execute(
            text("UPDATE app.reports SET updated_at = now() WHERE id = :id"), {"id": report_id}
        )
    if photos:
        add_photos(conn, report_id, photos, update_id)
    return get_report_by_id(conn, report_id)  # type: ignore[return-value]


def assign_team(conn: Connection, report_id: int, team: str, note: str, by: Actor) -> bool:
    """Give the report to ``team`` (a configured team id); the internal ``note`` records
    who and when. False when the report does not exist or already has that team."""
    changed = conn.execute(
        text(
            "UPDATE app.reports SET team = :team, updated_at = now(),"
            " first_response_at = coalesce(first_response_at, now())"
            " WHERE id = :id AND team IS DISTINCT FROM :team"
        ),
        {"id": report_id, "team": team},
    ).rowcount
    if changed:
        _insert_update(conn, report_id, "internal", note, by, None)
    return bool(changed)


def hide_photo(conn: Connection, photo_id: int, by: Actor, hidden: bool = True) -> bool:
    """Hide (or show again) a photo; the file and record are kept for audit."""
    return bool(
        conn.execute(
            text(
                "UPDATE app.report_photos SET hidden = :hidden,"
                " hidden_at = CASE WHEN :hidden THEN now() END,"
                " hidden_by = CASE WHEN :hidden THEN CAST(:user AS integer) END WHERE id = :id"
            ),
            {"id": photo_id, "hidden": hidden, "user": by.user_id},
        ).rowcount
    )


def redact_report(
    conn: Connection, report_id: int, by: Actor, *, title: str, description: str
) -> bool:
    """Replace a report's public text; the first original is kept for audit."""
    return bool(
        conn.execute(
            text(
                "UPDATE app.reports SET original_title = coalesce(original_title, title),"
                " original_description = coalesce(original_description, description),"
                " title = :title, description = :description, redacted_at = now(),"
                " redacted_by = :user, updated_at = now() WHERE id = :id"
            ),
            {"id": report_id, "title": title, "description": description, "user": by.user_id},
        ).rowcount
    )
