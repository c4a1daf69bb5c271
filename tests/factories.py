"""Plain factory functions that tests use to make rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from quire.core import contexts
from quire.core.db import Database, with_user
from quire.core.embeddings import Embedder
from quire.core.models import Role
from quire.core.secrets import derive
from quire.core.tenancy import Caller, create_api_key, create_principal
from quire.runtime.errors import NonRetryable

if TYPE_CHECKING:
    from tests.harness import Harness

# Every test process (and every Quire process a test starts) signs tenant contexts with this.
TEST_SECRET_KEY = "quire-tests-secret-key-0123456789abcdef"
CONTEXT_KEY = derive(TEST_SECRET_KEY.encode(), contexts.PURPOSE)


def open_database(url: str, **kwargs: object) -> Database:
    """The database at `url` as the API and workers open it: signing with the test key."""
    return Database(url, context_key=CONTEXT_KEY, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TenantFixture:
    id: uuid.UUID
    name: str


def make_key(database: Database, tenant: TenantFixture, role: Role, name: str = "") -> str:
    """A principal with `role` in `tenant`; returns its API key."""
    with database.tenant_session(tenant.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    return key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Person:
    """A principal with a key: who they are (as `quire.core.tenancy.Caller`) and their header."""

    caller: Caller
    headers: dict[str, str]

    @property
    def id(self) -> uuid.UUID:
        return self.caller.principal_id


def make_person(database: Database, tenant: TenantFixture, role: Role, name: str = "") -> Person:
    with database.tenant_session(tenant.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    caller = Caller(principal_id=principal.id, tenant_id=tenant.id, name=principal.name, role=role)
    return Person(caller=caller, headers=auth(key))


def owner_url(url: str) -> str:
    """The same test database as its owner (the embedded server's superuser): for tests that
    play someone with the owner's rights, such as a tamperer."""
    return with_user(url, "postgres")


class BreakableEmbedder(Embedder):
    """The real embedder, failing for good while `broken` (a model server that is down); the
    `embedder` fixture puts one in the content environment."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.broken = False

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.broken:
            raise NonRetryable("the embedding model is down")
        return self.inner.embed(texts)


def make_failed_version(
    client: httpx.Client,
    harness: Harness,
    embedder: BreakableEmbedder,
    headers: dict[str, str],
    *,
    name: str,
    data: bytes,
    content_type: str = "text/markdown",
) -> dict[str, str]:
    """A document whose version failed to ingest, half-way and for good: the embedding model was
    down while its run ran (it works again on return). Returns the upload's answer."""
    embedder.broken = True
    created = client.post("/v1/documents", files={"file": (name, data, content_type)}, headers=headers)
    assert created.status_code == 202, created.text
    harness.drive()
    embedder.broken = False
    body: dict[str, str] = created.json()
    version = client.get(
        f"/v1/documents/{body['document_id']}/versions/{body['version_number']}", headers=headers
    ).json()
    assert (version["status"], version["error_code"]) == ("failed", "ingest_failed"), version
    return body
