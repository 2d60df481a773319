"""Alembic environment: runs on the connection handed over by ``modelbus.gateway.db.migrate``."""

from __future__ import annotations

from alembic import context

from modelbus.gateway.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through db.migrate
    raise RuntimeError("run migrations through modelbus.gateway.db.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
