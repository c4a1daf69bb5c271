"""Bringing a Quire installation to a usable state: database, broker, schema, first tenant."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import psycopg
from alembic import command
from alembic.config import Config

from quire.core import contexts
from quire.core.broker import check_broker, describe_broker_url
from quire.core.db import (
    Database,
    check_database,
    context_key,
    describe_url,
    grant_login_roles,
    libpq_url,
    resolve_database_url,
    resolve_owner_url,
    user_of,
)
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


def start_database(settings: Settings) -> bool:
    """Start the embedded server when no database is configured; return whether this did."""
    if settings.database_url:
        return False
    return EmbeddedPostgres(settings.data_dir).start()[1]


def alembic_config(database_url: str, settings: Settings | None = None) -> Config:
    """Alembic's configuration; `settings` reach migrations that need the installation's secret."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("quire") / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["settings"] = settings
    return config


def migrate(
    owner_url: str,
    revision: str = "head",
    *,
    settings: Settings | None = None,
    context_key: bytes | None = None,
    login_user: str | None = None,
) -> None:
    """Bring the schema to `revision` as the tables' owner (`settings`, default the environment's,
    reach migrations that need the installation's secret); store the context key (None keeps
    the stored one, or makes one) and give `login_user` the roles the API and workers need."""
    command.upgrade(alembic_config(owner_url, settings), revision)
    if revision != "head":
        return
    with psycopg.connect(libpq_url(owner_url), autocommit=True) as conn:
        contexts.store_key(conn, context_key)
        if login_user and login_user != user_of(owner_url):
            grant_login_roles(conn, login_user)


def prepare(settings: Settings, *, run_migrations: bool = True) -> Installation:
    """Start or reach the database, check the broker, migrate; raise ServiceUnavailable if not.

    An embedded server this call started is stopped again when a later step fails: a start
    that did not happen leaves nothing running."""
    started = start_database(settings)
    try:
        url, owner_url = resolve_database_url(settings), resolve_owner_url(settings)
        check_database(owner_url)
        if run_migrations:
            migrate(owner_url, settings=settings, context_key=context_key(settings), login_user=user_of(url))
        check_database(url)
        check_broker(broker_url=settings.broker_url, database_url=url)
    except BaseException:
        if started:
            EmbeddedPostgres(settings.data_dir).stop()
        raise
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


def first_admin_key(settings: Settings) -> str | None:
    """Create the default tenant and its admin on the first start; return the key once."""
    database = Database.from_settings(settings, pool_size=1, max_overflow=0)
    try:
        with database.system_session() as session:
            key = bootstrap_default_tenant(session=session)
            session.commit()
        return key
    finally:
        database.dispose()
