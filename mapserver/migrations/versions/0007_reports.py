"""Residents' fault reports: reports, their state history, updates, photos, subscribers,
and the email outbox; two views in schema ``layers`` publish them (public and staff).

Revision ID: 0007
Revises: 0006

The states and their meaning are in :mod:`reports.domain`; every write goes through
:mod:`reports.store`.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATES = (
    "open",
    "investigating",
    "action_scheduled",
    "in_progress",
    "fixed",
    "closed",
    "duplicate",
    "not_responsible",
    "unable_to_fix",
)
STATE_LIST = ", ".join(f"'{s}'" for s in STATES)
# Public coordinates are snapped to this grid (metres): a pin on someone's house is not
# published to the metre. Same value as reports.domain.PUBLIC_GRID_M.
PUBLIC_GRID_M = 10


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _report_fk() -> sa.Column:
    return sa.Column(
        "report_id",
        sa.BigInteger,
        sa.ForeignKey("app.reports.id", ondelete="CASCADE"),
        nullable=False,
    )


def _user_fk() -> sa.Column:
    return sa.Column("user_id", sa.Integer, sa.ForeignKey("app.users.id", ondelete="SET NULL"))


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("reference", sa.Text, nullable=False, unique=True),  # e.g. SMBC-2026-000123
        sa.Column("category", sa.Text, nullable=False),  # category id in reports.yml
        sa.Column("service_code", sa.Text, nullable=False),  # its Open311 service code
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("geom", Geometry("POINT", srid=27700, spatial_index=False), nullable=False),
        sa.Column("ward_code", sa.Text),
        sa.Column("ward", sa.Text),
        sa.Column("asset_layer", sa.Text),
        sa.Column("asset_id", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("reporter_name", sa.Text),
        sa.Column("reporter_email", sa.Text),
        sa.Column("reporter_phone", sa.Text),
        sa.Column("show_name", sa.Boolean, nullable=False, server_default=sa.false()),
        # Answers to the category's extra questions, keyed by the Open311 attribute code.
        sa.Column("answers", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("team", sa.Text),
        sa.Column("interest_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("app.reports.id")),
        sa.Column("idempotency_key", sa.Text, unique=True),
        sa.Column("device_id", sa.Text),
        # The reporter's secret link (no resident accounts): only its sha256 is kept.
        sa.Column("reporter_token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("source", sa.Text, nullable=False, server_default="web"),  # web, open311
        # Moderation keeps the original for audit: hidden from the public, or redacted.
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("original_title", sa.Text),
        sa.Column("original_description", sa.Text),
        sa.Column("redacted_at", sa.DateTime(timezone=True)),
        sa.Column("redacted_by", sa.Integer, sa.ForeignKey("app.users.id", ondelete="SET NULL")),
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("first_response_at", sa.DateTime(timezone=True)),  # first staff action
        sa.Column("fixed_at", sa.DateTime(timezone=True)),  # latest move to "fixed"
        sa.Column("closed_at", sa.DateTime(timezone=True)),  # latest move to a closed state
        sa.CheckConstraint(f"state IN ({STATE_LIST})", name="reports_state"),
        sa.CheckConstraint("interest_count >= 0", name="reports_interest"),
        sa.CheckConstraint(
            "(state = 'duplicate') = (duplicate_of IS NOT NULL)", name="reports_duplicate_of"
        ),
        sa.CheckConstraint("duplicate_of <> id", name="reports_not_own_duplicate"),
        schema="app",
    )
    op.execute("CREATE INDEX reports_geom ON app.reports USING gist (geom)")
    op.create_index("reports_state_category", "reports", ["state", "category"], schema="app")
    op.create_index("reports_asset", "reports", ["asset_layer", "asset_id"], schema="app")
    op.create_index("reports_created", "reports", ["created_at"], schema="app")
    op.create_index("reports_ward", "reports", ["ward"], schema="app")

    op.create_table(
        "report_states",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _report_fk(),
        sa.Column("from_state", sa.Text),  # NULL for the first row (the report's creation)
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),  # shown name: "Reporter", a user
        _user_fk(),
        _now(),
        sa.CheckConstraint(f"state IN ({STATE_LIST})", name="report_states_state"),
        schema="app",
    )
    op.create_index("report_states_report", "report_states", ["report_id", "id"], schema="app")

    op.create_table(
        "report_updates",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _report_fk(),
        # public: staff to everyone; internal: staff only; resident: the reporter, public.
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        _user_fk(),
        sa.Column("state_id", sa.BigInteger, sa.ForeignKey("app.report_states.id")),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("original_body", sa.Text),
        sa.Column("redacted_at", sa.DateTime(timezone=True)),
        _now(),
        sa.CheckConstraint("kind IN ('public', 'internal', 'resident')", name="report_update_kind"),
        schema="app",
    )
    op.create_index("report_updates_report", "report_updates", ["report_id", "id"], schema="app")

    op.create_table(
        "report_photos",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _report_fk(),
        sa.Column("update_id", sa.BigInteger, sa.ForeignKey("app.report_updates.id")),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("store_key", sa.Text, nullable=False, unique=True),  # in the photo store
        sa.Column("thumbnail_key", sa.Text, nullable=False, unique=True),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),  # of the stored (re-encoded) file
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("hidden_at", sa.DateTime(timezone=True)),
        sa.Column("hidden_by", sa.Integer, sa.ForeignKey("app.users.id", ondelete="SET NULL")),
        _now(),
        schema="app",
    )
    op.create_index("report_photos_report", "report_photos", ["report_id"], schema="app")

    op.create_table(
        "report_subscribers",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _report_fk(),
        sa.Column("email", sa.Text, nullable=False),  # stored lower-case
        sa.Column("is_reporter", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("unsubscribe_token_hash", sa.Text, nullable=False, unique=True),
        _now(),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("report_id", "email"),
        schema="app",
    )

    op.create_table(
        "email_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("to_address", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),  # confirmation, state_change, update…
        sa.Column("report_id", sa.BigInteger, sa.ForeignKey("app.reports.id", ondelete="SET NULL")),
        _now(),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        schema="app",
    )
    op.create_index(
        "email_outbox_due",
        "email_outbox",
        ["next_attempt_at"],
        schema="app",
        postgresql_where=sa.text("sent_at IS NULL"),
    )

    # Published through the catalogue (layers with `managed: true`): no personal data in
    # the public view; everything in the staff one.
    op.execute(
        f"""
        CREATE VIEW layers.reports_public AS
        SELECT r.id AS fid, r.reference, r.category, r.service_code, r.state, r.ward,
               r.asset_layer, r.asset_id, r.title, r.description,
               CASE WHEN r.show_name THEN r.reporter_name END AS reporter_name,
               r.interest_count,
               (SELECT d.reference FROM app.reports d WHERE d.id = r.duplicate_of)
                   AS duplicate_of,
               (SELECT count(*) FROM app.report_photos p
                 WHERE p.report_id = r.id AND NOT p.hidden) AS photos,
               r.created_at, r.updated_at, r.fixed_at, r.closed_at,
               ST_SnapToGrid(r.geom, {PUBLIC_GRID_M})::geometry(Point, 27700) AS geom
        FROM app.reports r
        WHERE NOT r.hidden
        """
    )
    op.execute(
        """
        CREATE VIEW layers.reports_staff AS
        SELECT r.id AS fid, r.reference, r.category, r.service_code, r.state, r.ward_code,
               r.ward, r.asset_layer, r.asset_id, r.title, r.description, r.reporter_name,
               r.reporter_email, r.reporter_phone, r.show_name, r.answers::text AS answers,
               r.team, r.interest_count,
               (SELECT d.reference FROM app.reports d WHERE d.id = r.duplicate_of)
                   AS duplicate_of,
               (SELECT count(*) FROM app.report_photos p WHERE p.report_id = r.id) AS photos,
               r.hidden, r.source, r.created_at, r.updated_at, r.first_response_at,
               r.fixed_at, r.closed_at, r.geom
        FROM app.reports r
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS layers.reports_staff")
    op.execute("DROP VIEW IF EXISTS layers.reports_public")
    for table in (
        "email_outbox",
        "report_subscribers",
        "report_photos",
        "report_updates",
        "report_states",
        "reports",
    ):
        op.drop_table(table, schema="app")
