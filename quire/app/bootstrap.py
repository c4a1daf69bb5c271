"""Bringing a Quire installation to a usable state: database, broker, schema, first tenant."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

from alembic import command
from alembic.config import Config

from quire.core.broker import check_broker, describe_broker_url
from quire.core.db import Database, check_database, describe_url, sqlalchemy_url
from quire.core.embedded import EmbeddedPostgres
from quire.core.settings import Settings
from quire.core.tenancy import bootstrap_default_tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Installation:
    database_url: str
    started_embedded: bool
    database_label: str
    broker_label: str


def start_database(settings: Settings) -> tuple[str, bool]:
    """The database URL, starting the embedded server when none is configured."""
    if settings.database_url:
        return sqlalchemy_url(settings.database_url), False
    return EmbeddedPostgres(settings.data_dir).start()


def alembic_config(database_url: str, settings: Settings | None = None) -> Config:
    """Alembic's configuration; `settings` reach migrations that need the installation's secret."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("quire") / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["settings"] = settings
    return config


def migrate(database_url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    """Bring the schema up to `revision`; `settings` default to the environment's (load_settings)."""
    command.upgrade(alembic_config(database_url, settings), revision)


def prepare(settings: Settings, *, run_migrations: bool = True) -> Installation:
    """Start or reach the database, check the broker, migrate; raise ServiceUnavailable if not."""
    url, started = start_database(settings)
    check_database(url)
    if run_migrations:
        migrate(url, settings=settings)
    check_broker(broker_url=settings.broker_url, database_url=url)
    label = (
        f"embedded PostgreSQL in {EmbeddedPostgres(settings.data_dir).pgdata}"
        if settings.embedded_database
        else describe_url(url)
    )
    return Installation(
        database_url=url,
        started_embedded=started,
        database_label=label,
        broker_label=describe_broker_url(settings.broker_url),
    )


def first_admin_key(database_url: str) -> str | None:
    """Create the default tenant and its admin on the first start; return the key once."""
    database = Database(database_url, pool_size=1, max_overflow=0)
    try:
        with database.system_session() as session:
            key = bootstrap_default_tenant(session=session)
            session.commit()
        return key
    finally:
        database.dispose()
