"""initial fleet schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("address", sa.String(255)),
        sa.Column("cpus", sa.Integer),
        sa.Column("memory", sa.BigInteger),
        sa.Column("facts", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state_since", TS, nullable=False),
        sa.Column("registered_at", TS),
        sa.Column("last_heartbeat", TS),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("node", sa.String(255), index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32)),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("nodes", sa.Text, nullable=False),
        sa.Column("command", sa.Text),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_scheduled", TS),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(255), nullable=False, index=True),
        sa.Column("scheduled_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("coalesced", sa.Integer, nullable=False),
        sa.Column("detail", sa.JSON),
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("node", sa.String(255), nullable=False, index=True),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("detail", sa.JSON),
        sa.Column("seconds", sa.Float),
    )


def downgrade() -> None:
    for t in ("operations", "job_runs", "jobs", "events", "nodes"):
        op.drop_table(t)
