"""Engines and sessions, and the one place where tenant isolation is switched on.

Every table that belongs to a tenant has PostgreSQL row-level security keyed on the setting
`quire.tenant_id` (see `quire.migrations.tenancy`). A `TenantSession` starts each transaction
with `SET LOCAL ROLE quire_app` and that setting, so whatever SQL runs inside it (ORM or raw)
sees one tenant's rows only, and a query without the setting sees nothing. A `SystemSession`
runs as the tables' owner, which row-level security does not restrict: it is for migrations,
tenant administration and the runtime's cross-tenant bookkeeping (claims, the sweeper).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from quire.core.embedded import EmbeddedPostgres
from quire.core.errors import ServiceUnavailable
from quire.core.settings import Settings

APP_ROLE = "quire_app"
TENANT_SETTING = "quire.tenant_id"
ENTER_TENANT_SQL = f"SELECT set_config('role', '{APP_ROLE}', true), set_config('{TENANT_SETTING}', %s, true)"
LEAVE_TENANT_SQL = f"SELECT set_config('role', 'none', true), set_config('{TENANT_SETTING}', '', true)"


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def dumps(value: Any) -> str:
    """JSON for JSONB columns: pydantic models, UUIDs and datetimes included."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def sqlalchemy_url(url: str) -> str:
    """Normalise any postgresql:// URL to SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The same URL as plain psycopg wants it."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


def resolve_database_url(settings: Settings, *, start_embedded: bool = True) -> str:
    """The URL Quire should use: QUIRE_DATABASE_URL, or the embedded server (started if asked)."""
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    embedded = EmbeddedPostgres(settings.data_dir)
    if start_embedded:
        url, _ = embedded.start()
        return url
    status = embedded.status()
    if status.url is None:
        raise ServiceUnavailable(
            f"the embedded PostgreSQL in {embedded.pgdata} is not running; "
            "start Quire with `quire up` or run `quire db start`"
        )
    return status.url


def describe_url(url: str) -> str:
    """A URL fit for logs and error messages: no password."""
    return make_url(url).render_as_string(hide_password=True)


def check_database(url: str, *, timeout: float = 5.0) -> None:
    """Raise ServiceUnavailable with one readable sentence unless the database answers."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ServiceUnavailable(
            f"cannot reach the database at {describe_url(url)}: {reason}; "
            "check QUIRE_DATABASE_URL (or unset it to use the embedded database)"
        ) from None


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        json_serializer=dumps,
        connect_args={"connect_timeout": 5, "application_name": "quire"},
    )


class SystemSession(Session):
    """A session with the owner's rights: no tenant filter. Keep its uses few and named."""


@event.listens_for(SystemSession, "after_begin")
def _leave_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    # Undo a tenant switch made earlier in the same outer transaction (tests share one).
    connection.exec_driver_sql(LEAVE_TENANT_SQL)


class TenantSession(Session):
    """A session whose every transaction sees exactly one tenant's rows."""

    def __init__(self, *args: Any, tenant_id: uuid.UUID, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info["tenant_id"] = tenant_id

    @property
    def tenant_id(self) -> uuid.UUID:
        tenant_id: uuid.UUID = self.info["tenant_id"]
        return tenant_id


@event.listens_for(TenantSession, "after_begin")
def _enter_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    connection.exec_driver_sql(ENTER_TENANT_SQL, (str(session.info["tenant_id"]),))


def enter_tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """The same switch for a raw psycopg transaction (the runtime's hot path)."""
    conn.execute(ENTER_TENANT_SQL, (str(tenant_id),))


class Database:
    """The engine of one Quire database and the two kinds of session made from it."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = sqlalchemy_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size, max_overflow=max_overflow)
        self.bind: Engine | Connection = self.engine

    def bind_to(self, connection: Connection) -> None:
        """Make every session join `connection`'s transaction (tests roll it back afterwards)."""
        self.bind = connection

    def _session_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"expire_on_commit": False}
        if isinstance(self.bind, Connection):
            options["join_transaction_mode"] = "create_savepoint"
        return options

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Database:
        return cls(resolve_database_url(settings), **kwargs)

    def tenant_session(self, tenant_id: uuid.UUID) -> TenantSession:
        return TenantSession(self.bind, tenant_id=tenant_id, **self._session_options())

    def system_session(self) -> SystemSession:
        return SystemSession(self.bind, **self._session_options())

    @contextmanager
    def raw_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled psycopg connection for SQL that is clearest without the ORM."""
        connection = self.engine.raw_connection()
        try:
            driver = connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            yield driver
        finally:
            connection.close()

    def dispose(self) -> None:
        self.engine.dispose()
