"""OGC API Processes jobs, in the shape pygeoapi's PostgreSQL job manager uses.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("identifier", sa.String, primary_key=True),
        sa.Column("type", sa.String, nullable=False, server_default="process"),
        sa.Column("process_id", sa.String, nullable=False),
        sa.Column("created", sa.DateTime),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
        sa.Column("updated", sa.DateTime),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("location", sa.String),
        sa.Column("mimetype", sa.String),
        sa.Column("message", sa.String),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("output", sa.LargeBinary),
        schema="app",
    )
    op.create_index("jobs_created", "jobs", ["created"], schema="app")


def downgrade() -> None:
    op.drop_table("jobs", schema="app")
