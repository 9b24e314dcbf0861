"""Who started each OGC API Processes job (their role, key or account), so that a job's
page and results are for them and staff only; and an index for the retention clean-up.

Revision ID: 0009
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("owner_role", sa.String), schema="app")
    op.add_column("jobs", sa.Column("owner_name", sa.String), schema="app")
    op.add_column("jobs", sa.Column("owner_key_id", sa.Integer), schema="app")
    op.add_column("jobs", sa.Column("owner_user_id", sa.Integer), schema="app")
    op.create_index("jobs_finished", "jobs", ["finished"], schema="app")


def downgrade() -> None:
    op.drop_index("jobs_finished", "jobs", schema="app")
    for column in ("owner_user_id", "owner_key_id", "owner_name", "owner_role"):
        op.drop_column("jobs", column, schema="app")
