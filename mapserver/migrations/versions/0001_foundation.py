"""Foundation: PostGIS and pgRouting, the app and layers schemas, layer provenance.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    op.execute("CREATE SCHEMA IF NOT EXISTS layers")
    op.create_table(
        "layer_versions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        # loading -> live -> previous -> retired; or loading -> failed
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text),
        sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_repaired", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("crs_in", sa.Text),
        sa.Column("crs_out", sa.Text),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("run_by", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.UniqueConstraint("layer", "version"),
        sa.CheckConstraint(
            "status IN ('loading', 'live', 'previous', 'retired', 'failed')",
            name="layer_versions_status",
        ),
        schema="app",
    )
    op.create_index(
        "layer_versions_one_live",
        "layer_versions",
        ["layer"],
        unique=True,
        schema="app",
        postgresql_where=sa.text("status = 'live'"),
    )


def downgrade() -> None:
    op.drop_table("layer_versions", schema="app")
    op.execute("DROP SCHEMA IF EXISTS layers CASCADE")
