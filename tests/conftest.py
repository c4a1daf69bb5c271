"""Test fixtures: one embedded PostgreSQL per test session, one rolled-back transaction per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from quire.app.api import create_app
from quire.app.bootstrap import migrate
from quire.content.environment import ContentEnvironment
from quire.content.parsing import Parser
from quire.core.blobs import FileBlobStore
from quire.core.db import Database, libpq_url, with_user
from quire.core.embedded import LOGIN_ROLE, EmbeddedPostgres
from quire.core.models import Tenant
from quire.core.settings import Settings
from tests.factories import CONTEXT_KEY, TEST_SECRET_KEY, BreakableEmbedder, TenantFixture, open_database
from tests.harness import Harness, make_harness
from tests.provider_guard import block_real_providers

# Quire settings in the developer's environment must not leak into tests.
for name in [n for n in os.environ if n.startswith("QUIRE_")]:
    del os.environ[name]
os.environ["QUIRE_SECRET_KEY"] = TEST_SECRET_KEY
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# No test may reach a real, paid model provider: any attempt fails the test.
block_real_providers()


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="quire-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(data_dir)
    server.start()
    yield server
    server.stop()


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the test server, migrated by its owner; returns the URL of the login
    the API and workers use (not a superuser: see tests/core/test_tenancy.py)."""
    admin = libpq_url(server_url).replace("/quire?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server_url.replace("/quire?", f"/{name}?")
    migrate(url, context_key=CONTEXT_KEY, login_user=LOGIN_ROLE)
    return with_user(url, LOGIN_ROLE)


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    status = postgres.status()
    assert status.url is not None
    return create_database(status.url, "quire_test")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def tenants(database_url: str) -> dict[str, TenantFixture]:
    """Two tenants, committed once for the session; tests add their rows inside rollbacks."""
    database = open_database(database_url, pool_size=1)
    made = {}
    with database.system_session() as session:
        for name in ("acme", "globex"):
            tenant = Tenant(name=name)
            session.add(tenant)
            made[name] = TenantFixture(id=tenant.id, name=name)
        session.commit()
    database.dispose()
    return made


@pytest.fixture(scope="session")
def session_database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def database(session_database: Database) -> Iterator[Database]:
    """The test database with every session joined to one transaction that is rolled back."""
    connection = session_database.engine.connect()
    transaction = connection.begin()
    session_database.bind_to(connection)
    try:
        yield session_database
    finally:
        session_database.bind = session_database.engine
        transaction.rollback()
        connection.close()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings, database=database)) as test_client:
        yield test_client


# Programs that run on committed rows: a database of their own, a real parser, the bundled model.

MAX_UPLOAD = 3 * 1024 * 1024


@pytest.fixture(scope="session")
def content_database_url(postgres: EmbeddedPostgres) -> str:
    status = postgres.status()
    assert status.url is not None
    return create_database(status.url, "quire_content_test")


@pytest.fixture(scope="session")
def parser() -> Iterator[Parser]:
    made = Parser(timeout=60, memory_limit_mb=1024)
    made.warm_up()
    yield made
    made.close()


@pytest.fixture
def environment(tmp_path: Path, parser: Parser) -> ContentEnvironment:
    made = ContentEnvironment(
        blobs=FileBlobStore(tmp_path / "blobs"),
        embedding_model="all-MiniLM-L6-v2",
        max_upload_bytes=MAX_UPLOAD,
    )
    made._parser = parser
    return made


@pytest.fixture
def embedder(environment: ContentEnvironment, monkeypatch: pytest.MonkeyPatch) -> BreakableEmbedder:
    """The content environment's embedder, made breakable (working until a test breaks it)."""
    breakable = BreakableEmbedder(environment.embedder)
    monkeypatch.setattr(ContentEnvironment, "embedder", property(lambda _: breakable))
    return breakable


@pytest.fixture
def content(content_database_url: str, environment: ContentEnvironment) -> Iterator[Harness]:
    with make_harness(content_database_url, environment) as made:
        yield made


@pytest.fixture
def api(content: Harness, settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        settings=settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}),
        database=content.database,
        services=content.services,
    )
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


# Runs driven in the test process on committed rows, in a database of their own.


@pytest.fixture(scope="session")
def runtime_database_url(postgres: EmbeddedPostgres) -> str:
    status = postgres.status()
    assert status.url is not None
    return create_database(status.url, "quire_runtime_test")


@pytest.fixture
def harness(runtime_database_url: str) -> Iterator[Harness]:
    with make_harness(runtime_database_url) as made:
        yield made
