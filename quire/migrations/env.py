"""Alembic environment: runs Quire's migrations against the URL `quire migrate` resolved."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import quire.content.models
import quire.core.models
import quire.memory.models
import quire.runtime.models  # noqa: F401
from quire.core.db import resolve_database_url, sqlalchemy_url
from quire.core.settings import load_settings

config = context.config
target_metadata = SQLModel.metadata


def database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return sqlalchemy_url(str(url))
    return sqlalchemy_url(resolve_database_url(load_settings()))


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # One migrator at a time, even when several processes start together.
        connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext('quire-migrations'))")
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(hashtext('quire-migrations'))")
            connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
