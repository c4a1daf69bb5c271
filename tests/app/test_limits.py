"""Request body limits: every route refuses a body over its limit with 413 and stores nothing of it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.app.api import create_app
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from tests.conftest import MAX_UPLOAD
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.runtime.test_routes import Ticket

TWO_MB = 2 * 1024 * 1024


@pytest.fixture
def limited(harness: Harness, settings: Settings) -> Iterator[TestClient]:
    """The API with its default body limit, on committed runs driven in the test process."""
    app = create_app(settings=settings, database=harness.database)
    app.state.kicker = harness.kicker
    with TestClient(app) as client:
        yield client


def keys(harness: Harness) -> dict[Role, dict[str, str]]:
    tenant = TenantFixture(id=harness.tenant_id, name="limits")
    return {role: auth(make_key(harness.database, tenant, role)) for role in Role}


def count(harness: Harness, sql: str, **params: Any) -> int:
    with harness.database.tenant_session(harness.tenant_id) as session:
        return int(session.execute(text(sql), params).scalar_one())


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body in pieces, so that it is sent without a Content-Length (chunked)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_too_large(response: Any, setting: str = "QUIRE_MAX_REQUEST_KB") -> None:
    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "too_large" and setting in error["message"], error


def test_a_2_mb_signal_is_refused_and_nothing_is_stored(harness: Harness, limited: TestClient) -> None:
    key = keys(harness)
    run_id = harness.start("test.ticket", Ticket())
    harness.drive()
    body = json.dumps({"payload": "x" * TWO_MB}).encode()
    headers = {**key[Role.admin], "Content-Type": "application/json"}
    url = f"/v1/runs/{run_id}/signals/answer"

    assert_too_large(limited.post(url, content=body, headers=headers))
    assert_too_large(limited.post(url, content=chunks(body), headers=headers))
    assert count(harness, "SELECT count(*) FROM runtime_signal WHERE run_id = :id", id=run_id) == 0


def test_a_2_mb_memory_proposal_is_refused_and_nothing_is_stored(
    harness: Harness, limited: TestClient
) -> None:
    key = keys(harness)
    evidence = [{"run_id": str(harness.start("test.ticket", Ticket())), "note": "a run"}]
    proposal = {"text": "Badges are renewed every year.", "data": {"pad": "x" * TWO_MB}, "evidence": evidence}
    body = json.dumps(proposal).encode()
    headers = {**key[Role.contributor], "Content-Type": "application/json"}

    assert_too_large(limited.post("/v1/memories", content=body, headers=headers))
    assert_too_large(limited.post("/v1/memories", content=chunks(body), headers=headers))
    assert count(harness, "SELECT count(*) FROM memory_item") == 0


def test_mcp_and_console_posts_are_limited_too(harness: Harness, limited: TestClient) -> None:
    key = keys(harness)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"padding": "x" * TWO_MB}}
    mcp_headers = {**key[Role.admin], "Content-Type": "application/json", "Accept": "application/json"}
    assert_too_large(limited.post("/mcp", content=json.dumps(call).encode(), headers=mcp_headers))
    assert_too_large(limited.post("/mcp", content=chunks(json.dumps(call).encode()), headers=mcp_headers))

    form = b"key=" + b"x" * TWO_MB
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_too_large(limited.post("/console/login", content=form, headers=form_headers))
    assert_too_large(limited.post("/console/memory/bulk", content=chunks(form), headers=form_headers))


def test_the_limit_is_a_setting(harness: Harness, settings: Settings) -> None:
    app = create_app(settings=settings.model_copy(update={"max_request_kb": 4}), database=harness.database)
    app.state.kicker = harness.kicker
    key = keys(harness)
    evidence = [{"run_id": str(harness.start("test.ticket", Ticket())), "note": "a run"}]
    with TestClient(app) as client:
        small = {"text": "Badges are renewed every year.", "data": {"p": "x" * 3000}, "evidence": evidence}
        assert client.post("/v1/memories", json=small, headers=key[Role.contributor]).status_code == 202
        large = {**small, "data": {"p": "x" * 5000}}
        refused = client.post("/v1/memories", json=large, headers=key[Role.contributor])
    assert_too_large(refused)
    assert "4096 bytes" in refused.json()["error"]["message"]
    assert count(harness, "SELECT count(*) FROM memory_item") == 1


def test_uploads_keep_their_own_larger_limit(
    content: Harness, settings: Settings, environment: ContentEnvironment
) -> None:
    app = create_app(
        settings=settings.model_copy(update={"max_upload_mb": MAX_UPLOAD / 2**20}),
        database=content.database,
        services=content.services,
    )
    app.state.kicker = content.kicker
    tenant = TenantFixture(id=content.tenant_id, name="uploads")
    key = auth(make_key(content.database, tenant, Role.contributor))
    with TestClient(app) as client:
        accepted = client.post(
            "/v1/documents", files={"file": ("big.txt", b"words " * (TWO_MB // 6), "text/plain")}, headers=key
        )
        assert accepted.status_code == 202, accepted.text
        boundary = uuid.uuid4().hex
        over = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n'
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            + b"x" * (MAX_UPLOAD + 2 * 1024 * 1024)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        refused = client.post(
            "/v1/documents",
            content=chunks(over),
            headers={**key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert_too_large(refused, "QUIRE_MAX_UPLOAD_MB")
    with content.database.tenant_session(content.tenant_id) as session:
        titles = session.execute(text("SELECT title FROM content_document")).scalars().all()
    assert "huge.txt" not in " ".join(str(title) for title in titles)
