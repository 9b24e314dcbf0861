"""The gazetteer behind the search box: named places from the catalogue's layers.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "gazetteer",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("bbox", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        schema="app",
    )
    op.create_index("gazetteer_layer", "gazetteer", ["layer"], schema="app")
    op.execute(
        "CREATE INDEX gazetteer_label_trgm ON app.gazetteer USING gin (lower(label) gin_trgm_ops)"
    )


def downgrade() -> None:
    op.drop_table("gazetteer", schema="app")
