"""The outbound policy as a tenant admin meets it: an MCP server on an internal address is refused
at registration and by the workers, what a tenant sees of a failure never says what answered,
and headers and environment values are stored encrypted and never returned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.agent.mcp.access import mcp_access
from quire.agent.mcp.credentials import check_credentials_key
from quire.agent.mcp.endpoints import Endpoint
from quire.agent.mcp.errors import McpUnavailable
from quire.agent.mcp.hub import McpHub
from quire.agent.mcp.watcher import McpWatcher
from quire.core.db import Database
from quire.core.encryption import UndecryptableSecret
from quire.core.models import Role
from quire.core.settings import Settings
from tests.factories import TenantFixture, auth, make_key
from tests.local_servers import banner_server, fake_dns, free_port, http_server, mcp_http_server

GENERIC = "could not reach the MCP server at {url}: it did not answer as an MCP server"


@pytest.fixture
def admin(database: Database, tenants: dict[str, TenantFixture]) -> dict[str, str]:
    return auth(make_key(database, tenants["acme"], Role.admin))


@pytest.fixture
def hub() -> Iterator[McpHub]:
    made = McpHub(timeout=10)
    yield made
    made.shutdown()


def configure(client: TestClient, **changes: Any) -> None:
    """Change the running API's settings (QUIRE_OUTBOUND_ALLOW, …) for this test."""
    state = client.app.state  # type: ignore[attr-defined]
    state.settings = state.settings.model_copy(update=changes)


def register(
    client: TestClient, caller: dict[str, str], url: str, name: str = "local", sync: bool = True, **extra: Any
) -> Any:
    spec = {"name": name, "transport": "http", "url": url, **extra}
    return client.post(f"/v1/tools/mcp-servers?sync={str(sync).lower()}", json=spec, headers=caller)


def refusal(response: Any) -> str:
    assert response.status_code == 422, response.text
    message: str = response.json()["error"]["message"]
    return message


def test_an_mcp_server_on_127_0_0_1_is_refused_at_registration(
    client: TestClient, admin: dict[str, str]
) -> None:
    with mcp_http_server() as (url, hits):
        message = refusal(register(client, admin, url))
    assert "127.0.0.1 is a loopback address" in message
    assert "Quire does not connect to internal addresses unless QUIRE_OUTBOUND_ALLOW includes it" in message
    assert len(hits) == 0
    assert client.get("/v1/tools/mcp-servers/local", headers=admin).status_code == 404


def test_localhost_and_names_of_private_and_metadata_addresses_are_refused(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"intranet.quire.test": ["10.20.30.40"], "meta.quire.test": ["169.254.169.254"]})
    port = free_port()
    cases = {
        f"http://localhost:{port}/mcp": "resolves to 127.0.0.1, a loopback address",
        "http://intranet.quire.test/mcp": "intranet.quire.test resolves to 10.20.30.40, a private address",
        "http://meta.quire.test/mcp": "resolves to 169.254.169.254, a cloud metadata address",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a cloud metadata address",
        "http://[::ffff:169.254.169.254]/": "a cloud metadata address",
        "http://[fd00:ec2::254]/": "fd00:ec2::254 is a cloud metadata address",
        "http://100.100.100.200/": "100.100.100.200 is a cloud metadata address",
        "http://[::1]:8080/mcp": "::1 is a loopback address",
        "http://0.0.0.0:8080/mcp": "0.0.0.0 is an unspecified address",
        "http://100.64.1.1/mcp": "100.64.1.1 is a carrier-grade NAT address",
        "http://[fd12:3456::1]/mcp": "fd12:3456::1 is a private address",
    }
    for url, reason in cases.items():
        assert reason in refusal(register(client, admin, url)), url


def test_a_url_with_credentials_is_refused_with_a_pointer_to_headers(
    client: TestClient, admin: dict[str, str]
) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    message = refusal(register(client, admin, "http://user:pa55word@127.0.0.1:9/mcp"))
    assert "credentials" in message and "header" in message and "pa55word" not in message


def test_a_private_address_inside_the_allowlist_is_allowed(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"intranet.quire.test": ["10.20.30.40"]})
    configure(client, outbound_allow="10.0.0.0/8, 127.0.0.1/32")
    registered = register(client, admin, "http://intranet.quire.test/mcp", name="intranet", sync=False)
    assert registered.status_code == 201, registered.text

    with mcp_http_server() as (url, hits):
        registered = register(client, admin, url, headers={"Authorization": "Bearer tok-1234-secret"})
        assert registered.status_code == 201, registered.text
        body = registered.json()
        assert body["error"] is None and body["server"]["tool_count"] == 1, body
        assert hits.seen and all(h["authorization"] == "Bearer tok-1234-secret" for h in hits.seen)


def test_a_redirect_from_an_allowed_server_to_an_internal_address_is_not_followed(
    client: TestClient, admin: dict[str, str]
) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    with mcp_http_server(host="127.0.0.2") as (internal, internal_hits):
        redirect = (307, {"Location": internal}, b"")
        with http_server(redirect) as (allowed, allowed_hits):
            registered = register(client, admin, f"{allowed}/mcp")
    assert registered.status_code == 201, registered.text
    assert registered.json()["error"] == GENERIC.format(url=f"{allowed}/mcp")
    assert len(allowed_hits) > 0 and len(internal_hits) == 0


def test_a_name_that_resolves_to_an_internal_address_after_registration_is_refused_on_connect(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    with mcp_http_server() as (url, hits):
        port = url.rsplit(":", 1)[1].split("/")[0]
        fake_dns(monkeypatch, {"flip.quire.test": ["127.0.0.1", "10.9.8.7"]})  # DNS rebinding
        registered = register(client, admin, f"http://flip.quire.test:{port}/mcp")
    assert registered.status_code == 201, registered.text
    assert registered.json()["error"] is not None
    assert len(hits) == 0


def test_a_tenant_sees_the_same_error_whatever_answered(client: TestClient, admin: dict[str, str]) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    errors = {}
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    errors["closed port"] = (closed, register(client, admin, closed, name="closed"))
    with banner_server() as (base, _):
        errors["ssh banner"] = (f"{base}/mcp", register(client, admin, f"{base}/mcp", name="banner"))
    page = (200, {"Content-Type": "text/html"}, b"<html><body>router admin</body></html>")
    with http_server(page) as (base, _):
        errors["web page"] = (f"{base}/mcp", register(client, admin, f"{base}/mcp", name="page"))
    forbidden = (401, {"Content-Type": "application/json"}, b'{"detail": "who are you"}')
    with http_server(forbidden) as (base, _):
        errors["401"] = (f"{base}/mcp", register(client, admin, f"{base}/mcp?token=abc123", name="auth"))
    for what, (url, response) in errors.items():
        assert response.status_code == 201, (what, response.text)
        assert response.json()["error"] == GENERIC.format(url=url), what
        assert response.json()["server"]["last_error"] == GENERIC.format(url=url), what


def test_stored_rows_hold_no_plain_secret_and_the_api_never_returns_one(
    client: TestClient, admin: dict[str, str], database: Database, tenants: dict[str, TenantFixture]
) -> None:
    configure(client, outbound_allow="127.0.0.1/32", mcp_allow_stdio=True)
    secrets = ["hdr-secret-7781", "query-secret-4412", "env-secret-9913"]
    with mcp_http_server() as (url, hits):
        answers = [
            register(
                client,
                admin,
                f"{url}?key=query-secret-4412",
                headers={"Authorization": "Bearer hdr-secret-7781", "X-Team": "ops"},
            )
        ]
        answers.append(
            client.post(
                "/v1/tools/mcp-servers?sync=false",
                json={
                    "name": "cmd",
                    "transport": "stdio",
                    "command": "mcp-thing",
                    "env": {"THING_TOKEN": "env-secret-9913"},
                },
                headers=admin,
            )
        )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json()["error"] is None
    assert any(h.get(":query") == "key=query-secret-4412" for h in hits.seen)  # the whole URL was used
    answers.append(client.get("/v1/tools/mcp-servers", headers=admin))
    answers.append(client.get("/v1/tools/mcp-servers/local", headers=admin))
    answers.append(client.get("/v1/tools/mcp-servers/cmd", headers=admin))
    answers.append(client.post("/v1/tools/mcp-servers/local/sync", headers=admin))
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert not any(s in answer.text for s in secrets), answer.text
    local = client.get("/v1/tools/mcp-servers/local", headers=admin).json()
    assert local["header_names"] == ["Authorization", "X-Team"] and local["url"] == url
    assert client.get("/v1/tools/mcp-servers/cmd", headers=admin).json()["env_names"] == ["THING_TOKEN"]

    with database.tenant_session(tenants["acme"].id) as session:
        rows = [r[0] for r in session.execute(text("SELECT row_to_json(s)::text FROM agent_mcp_server s"))]
    assert len(rows) == 2
    for row in rows:
        assert not any(s in row for s in secrets), row


def test_the_worker_side_connection_refuses_an_internal_address(
    client: TestClient, admin: dict[str, str], database: Database, settings: Settings, hub: McpHub
) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    with mcp_http_server() as (url, hits):
        assert register(client, admin, url, sync=False).status_code == 201
        # The operator takes 127.0.0.1 off the allowlist: the workers no longer connect to it.
        content = client.app.state.services.content  # type: ignore[attr-defined]
        assert McpWatcher(database, access=mcp_access(settings), content=content, hub=hub).run_once() == 1
        listed = client.get("/v1/tools/mcp-servers/local", headers=admin).json()
        assert listed["last_error"] == (
            "127.0.0.1 is a loopback address; Quire does not connect to internal addresses "
            "unless QUIRE_OUTBOUND_ALLOW includes it"
        ), listed

        # The hub refuses on its own, whoever hands it the endpoint.
        with pytest.raises(McpUnavailable) as refused:
            hub.tools(Endpoint(tenant_id=uuid.uuid4(), name="direct", transport="http", url=url))
        assert "loopback" in str(refused.value)
    assert len(hits) == 0


def test_the_wrong_secret_key_is_a_clear_error_at_start_and_in_the_api(
    client: TestClient, admin: dict[str, str], database: Database, tmp_path: Path
) -> None:
    configure(client, outbound_allow="127.0.0.1/32")
    assert register(client, admin, "http://127.0.0.1:9/mcp", sync=False).status_code == 201
    other = Settings(data_dir=tmp_path, secret_key="w" * 40)
    with pytest.raises(UndecryptableSecret, match="QUIRE_SECRET_KEY"):
        check_credentials_key(database, mcp_access(other).credentials)  # a worker's start

    configure(client, secret_key=other.secret_key)
    synced = client.post("/v1/tools/mcp-servers/local/sync", headers=admin)
    assert synced.status_code == 500 and "QUIRE_SECRET_KEY" in synced.json()["error"]["message"]
