"""The council boundary as loads check it, kept per boundary version, CRS and tolerance.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Made from a version's rows, which never change: no invalidation beyond the version.
    op.execute(
        """
        CREATE TABLE app.load_boundaries (
            version_id bigint NOT NULL REFERENCES app.layer_versions (id) ON DELETE CASCADE,
            srid integer NOT NULL,
            tolerance_m double precision NOT NULL,
            wkb bytea,
            PRIMARY KEY (version_id, srid, tolerance_m)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE app.load_boundaries")
