"""The reports store against the real PostGIS: idempotency, history, outbox, me-too,
duplicates and the reopen window, each in one transaction as the API uses them."""

from datetime import UTC, datetime, timedelta

import pytest
from pyproj import Transformer

from mapserver.sessions import create_user
from reports import store
from reports.categories import load_reports_config
from reports.domain import State, TransitionError

POINT = store.Point(389_500, 390_200)
LONLAT = Transformer.from_crs(27700, 4326, always_xy=True).transform(POINT.x, POINT.y)


@pytest.fixture(scope="module")
def config(runtime):
    return load_reports_config(runtime.catalogue)


def _new(config, **extra):
    values = {"category": config.category("pothole"), "point": POINT, "title": "Deep pothole"}
    return store.NewReport(**(values | extra))


def _create(runtime, config, **extra):
    with runtime.engine.begin() as conn:
        ward = store.place(conn, runtime.catalogue, config, None, *LONLAT).ward
        return store.create_report(
            conn,
            _new(config, **extra),
            prefix="SMBC",
            ward=ward,
            report_url="/reports/{reference}?token={token}",
        )


@pytest.fixture(scope="module")
def staff(engine):
    user_id = create_user(engine, "store-staff@example.gov.uk", "A Officer", "staff", "x" * 12)
    return store.Actor("A Officer", user_id)


def test_reference_ward_history_and_confirmation_email(runtime, config, scalar):
    made = _create(runtime, config, reporter_email="Resident@Example.org")
    year = datetime.now(UTC).year
    assert made.reference == f"SMBC-{year}-{made.id:06d}" and made.token
    with runtime.engine.connect() as conn:
        report = store.get_report(conn, made.reference)
        assert report.state == "open" and report.team == "highways"
        assert report.ward  # the point is inside a Stockport ward
        assert [h.state for h in store.history(conn, made.id)] == ["open"]
        assert store.subscribers(conn, made.id) == ["resident@example.org"]
        assert store.token_matches(conn, made.id, made.token)
        assert not store.token_matches(conn, made.id, "guess")
    outbox = scalar(
        "SELECT count(*) FROM app.email_outbox WHERE report_id = :id AND kind = 'confirmation'"
        " AND body LIKE '%' || :token || '%'",
        id=made.id,
        token=made.token,
    )
    assert outbox == 1


def test_idempotency_key_makes_one_report(runtime, config, scalar):
    first = _create(runtime, config, idempotency_key="key-store-1")
    again = _create(runtime, config, idempotency_key="key-store-1")
    assert again.id == first.id and again.replayed and not first.replayed
    assert again.token == first.token  # a retry whose answer was lost still gets the link
    assert scalar("SELECT count(*) FROM app.reports WHERE idempotency_key = 'key-store-1'") == 1


def test_staff_fix_then_reporter_reopens_within_8_weeks(runtime, config, staff, scalar):
    made = _create(runtime, config, reporter_email="fixme@example.org")
    with runtime.engine.begin() as conn:
        store.change_state(conn, made.id, State.INVESTIGATING, staff)
        report = store.change_state(conn, made.id, State.FIXED, staff, "Filled today.")
        assert report.fixed_at is not None and report.first_response_at is not None
        with pytest.raises(TransitionError):
            store.change_state(conn, made.id, State.DUPLICATE, staff)
    with runtime.engine.begin() as conn:
        late = datetime.now(UTC) + timedelta(weeks=9)
        with pytest.raises(TransitionError):
            store.resident_update(conn, made.id, "Still there", reopen=True, now=late)
    with runtime.engine.begin() as conn:
        report = store.resident_update(conn, made.id, "It has opened up again.", reopen=True)
        assert report.state == "open" and report.closed_at is None
        states = [h.state for h in store.history(conn, made.id)]
        assert states == ["open", "investigating", "fixed", "open"]
        public = [u.body for u in store.updates(conn, made.id)]
        assert public == ["Filled today.", "It has opened up again."]
    emails = scalar(
        "SELECT count(*) FROM app.email_outbox WHERE report_id = :id AND kind = 'state_change'",
        id=made.id,
    )
    assert emails == 3


def test_me_too_nearby_and_duplicates(runtime, config, staff):
    original = _create(runtime, config, title="Original pothole")
    copy = _create(runtime, config, title="Same pothole", point=store.Point(POINT.x + 20, POINT.y))
    with runtime.engine.begin() as conn:
        near = store.nearby_open(
            conn, config.category("pothole"), store.Point(POINT.x + 30, POINT.y)
        )
        assert {original.id, copy.id} <= {r.id for r in near}
        far = store.nearby_open(
            conn, config.category("pothole"), store.Point(POINT.x + 500, POINT.y)
        )
        assert original.id not in {r.id for r in far}
        other = store.nearby_open(conn, config.category("fly_tipping"), POINT)
        assert original.id not in {r.id for r in other}
        assert store.me_too(conn, original.id, "neighbour@example.org") == 1
        assert "neighbour@example.org" in store.subscribers(conn, original.id)
        store.mark_duplicate(conn, copy.id, original.id, staff)
        assert store.get_report_by_id(conn, copy.id).duplicate_reference == original.reference
        assert store.get_report_by_id(conn, original.id).interest_count == 2
        with pytest.raises(TransitionError):
            store.mark_duplicate(conn, original.id, copy.id, staff)
        assert store.me_too(conn, copy.id, None) is None  # no longer open
