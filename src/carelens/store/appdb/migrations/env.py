"""Alembic environment: runs on the engine carelens hands over (see ``engine.upgrade``)."""

from __future__ import annotations

from alembic import context

from carelens.store.appdb.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
