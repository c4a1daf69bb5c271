"""Engines and sessions, and the one place where tenant isolation is switched on.

Every table that belongs to a tenant has PostgreSQL row-level security keyed on the setting
`quire.tenant_id`, which counts only with its signature in `quire.context` (see
`quire.core.contexts` and `quire.migrations.tenancy`). A `TenantSession` starts each transaction
as the role `quire_app` with that tenant and its signature, so whatever SQL runs inside it (ORM
or raw) sees one tenant's rows only, and neither `RESET ROLE` nor `set_config` takes it further.
A `SystemSession` runs as the same role in the signed system context, which reaches the
runtime's bookkeeping across tenants (claims, the sweeper), tenants and keys, and nothing else.
The login role of the API and workers is not a superuser and owns nothing; migrations run as
the owner (QUIRE_DATABASE_OWNER_URL).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from quire.core import contexts
from quire.core.embedded import LOGIN_ROLE, EmbeddedPostgres
from quire.core.errors import ConfigurationError, ServiceUnavailable
from quire.core.secrets import derive, secret_key
from quire.core.settings import Settings
from quire.core.urls import without_password

logger = logging.getLogger(__name__)

APP_ROLE = "quire_app"
QUEUE_ROLE = "quire_queue"
TENANT_SETTING = "quire.tenant_id"
CONTEXT_SETTING = "quire.context"
ENTER_CONTEXT_SQL = (
    f"SELECT set_config('role', '{APP_ROLE}', true), set_config('{TENANT_SETTING}', %s, true), "
    f"set_config('{CONTEXT_SETTING}', %s, true)"
)
# The same for the whole life of a connection (`Database.system_connection`).
ENTER_CONTEXT_FOR_GOOD_SQL = ENTER_CONTEXT_SQL.replace("true)", "false)")


PRIVILEGED_LOGIN_SQL = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid AND c.relnamespace = 'public'::regnamespace)
FROM pg_roles r WHERE r.rolname = session_user
"""


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
    """The URL the API and workers log in with: QUIRE_DATABASE_URL, or the embedded server's
    login role (the server is started if asked).

    A configured URL is returned as written, so that messages echo what the user typed; every
    function that connects normalises it (`sqlalchemy_url`, `libpq_url`)."""
    if settings.database_url:
        return settings.database_url
    return with_user(_embedded_url(settings, start_embedded=start_embedded), LOGIN_ROLE)


def resolve_owner_url(settings: Settings, *, start_embedded: bool = True) -> str:
    """The URL migrations run with: the tables' owner (QUIRE_DATABASE_OWNER_URL, else
    QUIRE_DATABASE_URL, else the embedded server's superuser)."""
    if settings.database_owner_url:
        return settings.database_owner_url
    if settings.database_url:
        return settings.database_url
    return _embedded_url(settings, start_embedded=start_embedded)


def _embedded_url(settings: Settings, *, start_embedded: bool) -> str:
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


def with_user(url: str, user: str) -> str:
    """The same database as another role (the embedded server trusts its local socket)."""
    url = sqlalchemy_url(url)
    _, at, rest = url.partition("@")
    if not at:
        raise ValueError(f"not a URL with a user: {describe_url(url)}")
    return f"postgresql+psycopg://{user}@{rest}"


def user_of(url: str) -> str | None:
    return make_url(sqlalchemy_url(url)).username


def context_key(settings: Settings) -> bytes:
    """The key this installation signs transaction contexts with (from QUIRE_SECRET_KEY)."""
    return derive(secret_key(configured=settings.secret_key, data_dir=settings.data_dir), contexts.PURPOSE)


def grant_login_roles(conn: psycopg.Connection[Any], login: str) -> None:
    """Make `login` (the API's and workers' role) a member of the roles Quire's work runs as."""
    conn.execute(
        sql.SQL("GRANT {}, {} TO {}").format(
            sql.Identifier(APP_ROLE), sql.Identifier(QUEUE_ROLE), sql.Identifier(login)
        )
    )


def describe_url(url: str) -> str:
    """A URL fit for logs and error messages: as written, without its password."""
    return without_password(url)


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
    """A session in the signed system context: the runtime's tables, tenants and keys across
    tenants, and nothing of their documents or memories. Keep its uses few and named."""

    def __init__(self, *args: Any, proof: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info["context"] = ("", proof)


class TenantSession(Session):
    """A session whose every transaction sees exactly one tenant's rows."""

    def __init__(self, *args: Any, tenant_id: uuid.UUID, proof: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info["tenant_id"] = tenant_id
        self.info["context"] = (str(tenant_id), proof)

    @property
    def tenant_id(self) -> uuid.UUID:
        tenant_id: uuid.UUID = self.info["tenant_id"]
        return tenant_id


@event.listens_for(SystemSession, "after_begin")
@event.listens_for(TenantSession, "after_begin")
def _enter_context(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    # Also undoes a switch made earlier in the same outer transaction (tests share one).
    connection.exec_driver_sql(ENTER_CONTEXT_SQL, session.info["context"])


class Database:
    """The engine of one Quire database and the two kinds of session made from it."""

    def __init__(
        self,
        url: str,
        *,
        context_key: bytes | None = None,
        pool_size: int = 10,
        max_overflow: int = 20,
    ) -> None:
        """`context_key` signs transaction contexts; None reads it from the database, which only
        the tables' owner may (tests, single-role set-ups): the API and workers are given it."""
        sqlalchemy_url(url)  # refuses what is not a PostgreSQL URL
        self.url = url  # as written: messages echo it; what connects normalises it
        self.engine = make_engine(self.url, pool_size=pool_size, max_overflow=max_overflow)
        self.bind: Engine | Connection = self.engine
        self._context_key = context_key

    @property
    def context_key(self) -> bytes:
        if self._context_key is None:
            with psycopg.connect(libpq_url(self.url), connect_timeout=5) as conn:
                self._context_key = contexts.read_key(conn)
        return self._context_key

    def bind_to(self, connection: Connection) -> None:
        """Make every session join `connection`'s transaction (tests roll it back afterwards)."""
        self.bind = connection

    def _session_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"expire_on_commit": False}
        if isinstance(self.bind, Connection):
            options["join_transaction_mode"] = "create_savepoint"
        return options

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None = None, **kwargs: Any) -> Database:
        """The database of these settings (or at `url`), signing with the installation's key."""
        return cls(url or resolve_database_url(settings), context_key=context_key(settings), **kwargs)

    def tenant_session(self, tenant_id: uuid.UUID) -> TenantSession:
        proof = contexts.tenant_proof(self.context_key, tenant_id)
        return TenantSession(self.bind, tenant_id=tenant_id, proof=proof, **self._session_options())

    def system_session(self) -> SystemSession:
        proof = contexts.system_proof(self.context_key)
        return SystemSession(self.bind, proof=proof, **self._session_options())

    def system_connection(self, *, statement_timeout: float) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool, in autocommit and in the system context
        for its whole life, so that one statement is one round trip and a few lines of Python:
        for a thread that must do its one small job however busy the process's other threads
        are (the lease keeper). Its statements give up after `statement_timeout` seconds instead
        of waiting on a lock. The caller closes it; keep what it runs to the runtime's tables."""
        conn = psycopg.connect(
            libpq_url(self.url),
            autocommit=True,
            connect_timeout=5,
            application_name="quire",
            options=f"-c statement_timeout={max(1, round(statement_timeout * 1000))}",
        )
        try:
            conn.execute(ENTER_CONTEXT_FOR_GOOD_SQL, ("", contexts.system_proof(self.context_key)))
        except BaseException:
            conn.close()
            raise
        return conn

    def check_login(self) -> None:
        """At a process's start: the signatures work, and a privileged login is pointed out."""
        self.check_context_key()
        with psycopg.connect(libpq_url(self.url), connect_timeout=5) as conn:
            row = conn.execute(PRIVILEGED_LOGIN_SQL).fetchone()
        if row is not None and any(row[1:]):
            logger.warning(
                "Quire logs in to the database as %s, which %s: row-level security then holds only "
                "until a statement says RESET ROLE. Give the API and workers a login that is a member "
                "of quire_app and quire_queue and nothing else (docs/security.md).",
                row[0],
                "is a superuser" if row[1] else "can bypass row-level security" if row[2] else "owns tables",
            )

    def check_context_key(self) -> None:
        """ConfigurationError unless the database accepts this process's signatures."""
        with self.tenant_session(uuid.uuid4()) as session:
            accepted = session.execute(text("SELECT quire_current_tenant() IS NOT NULL")).scalar()
        if not accepted:
            raise ConfigurationError(
                "the database does not accept this process's tenant signatures: it was migrated "
                "with another QUIRE_SECRET_KEY; set the same one on every host and in `quire migrate`"
            )

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
