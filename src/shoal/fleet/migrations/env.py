"""Alembic environment: the controller passes its connection in."""

from __future__ import annotations

from alembic import context

from shoal.fleet.db import Base

conn = context.config.attributes.get("connection")
if conn is None:  # pragma: no cover - the controller always passes one
    raise RuntimeError("run migrations through shoal.fleet.db.migrate")
context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
