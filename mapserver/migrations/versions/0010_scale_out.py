"""Shared state for several app processes and worker replicas: rate-limit counters and
the worker's task runs.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Unlogged: no WAL (cheap, never replicated); a crash resets the counters, harmlessly.
    op.execute(
        """
        CREATE UNLOGGED TABLE app.rate_counters (
            who text NOT NULL,
            window_start bigint NOT NULL,
            hits integer NOT NULL,
            PRIMARY KEY (who, window_start)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE app.worker_tasks (
            name text PRIMARY KEY,
            last_started_at timestamptz,
            last_finished_at timestamptz,
            last_outcome text,
            last_items integer,
            last_error text,
            runs bigint NOT NULL DEFAULT 0,
            failures bigint NOT NULL DEFAULT 0
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE app.worker_tasks")
    op.execute("DROP TABLE app.rate_counters")
