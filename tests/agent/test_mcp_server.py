"""Quire as an MCP server: `quire mcp` over stdio and the /mcp streamable-HTTP endpoint answer an
MCP client's tools/list and tools/call as the API key's principal, and refuse a reader's proposal.

The clients are configured from docs/mcp.md's own blocks (Claude Desktop's for stdio, Cursor's
and curl's for HTTP), so the configuration a reader copies is the one these tests run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp_types as types
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from quire.agent.mcp.endpoints import Endpoint
from quire.agent.mcp.errors import McpUnavailable
from quire.agent.mcp.hub import McpHub
from quire.agent.mcp.server import SERVED
from quire.app.api import create_app
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.outbound import OutboundPolicy
from quire.core.settings import Settings
from tests.factories import TEST_SECRET_KEY, TenantFixture, auth, make_key
from tests.harness import Harness

HANDBOOK = """# Employee handbook

## Holidays

Every employee gets 27 days of paid holiday a year, plus public holidays.

Unused holiday days expire at the end of March.

## Equipment

Laptops are replaced every three years.
"""
QUOTE = "Unused holiday days expire at the end of March."
MCP_DOC = Path(__file__).parents[2] / "docs" / "mcp.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"


def documented_section(heading: str) -> str:
    """docs/mcp.md from `heading` on."""
    text = MCP_DOC.read_text()
    return text[text.index(f"\n{heading}\n") + 1 :]


def documented_block(heading: str, language: str) -> str:
    """The first fenced `language` block under `heading` in docs/mcp.md."""
    found = re.search(rf"```{language}\n(.*?)```", documented_section(heading), re.DOTALL)
    assert found, f"no {language} block under {heading!r} in {MCP_DOC}"
    return found.group(1)


def test_the_guide_describes_every_tool_quire_serves() -> None:
    tools = documented_section("## Tools").split("\n## ")[0]
    assert sorted(re.findall(r"^\| `(\w+)` \|", tools, re.MULTILINE)) == sorted(SERVED)


def keys(content: Harness) -> dict[Role, str]:
    tenant = TenantFixture(id=content.tenant_id, name="mcp")
    return {role: make_key(content.database, tenant, role) for role in Role}


@pytest.fixture
def handbook(api: TestClient, content: Harness) -> str:
    key = make_key(content.database, TenantFixture(id=content.tenant_id, name="mcp"), Role.contributor)
    uploaded = api.post(
        "/v1/documents",
        files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
        headers=auth(key),
    )
    assert uploaded.status_code in (200, 201, 202), uploaded.text
    content.drive()
    document_id: str = uploaded.json()["document_id"]
    return document_id


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def exercise(client: Client, document_id: str) -> dict[str, Any]:
    """What a client sees: the tools, a search, the section read, a proposal (or its refusal)."""
    listed = await client.list_tools()
    found = await client.call_tool("search", {"query": "how many days of paid holiday", "k": 3})
    hit = found.structured_content["citations"][0]
    section = await client.call_tool(
        "read", {"document_id": hit["document_id"], "element_id": hit["element_ids"][0]}
    )
    proposal = await client.call_tool(
        "propose_memory",
        {
            "text": "Unused holiday days expire at the end of March.",
            "document_id": document_id,
            "quote": QUOTE,
        },
    )
    recalled = await client.call_tool("recall", {"query": "holiday"})
    return {
        "tools": sorted(t.name for t in listed.tools),
        "search": found,
        "hit": hit,
        "section": section,
        "proposal": proposal,
        "recall": recalled,
    }


def check(seen: dict[str, Any], document_id: str, *, may_propose: bool) -> None:
    assert seen["tools"] == ["propose_memory", "read", "recall", "search"]
    assert not seen["search"].is_error
    assert "Every employee gets 27 days of paid holiday a year" in text_of(seen["search"])
    assert seen["hit"]["document_id"] == document_id and seen["hit"]["section"][-1] == "Holidays"
    assert QUOTE in text_of(seen["section"]) and not seen["section"].is_error
    assert not seen["recall"].is_error  # nothing is approved yet, so nothing comes back
    assert "No approved memory" in text_of(seen["recall"])
    if may_propose:
        assert not seen["proposal"].is_error, text_of(seen["proposal"])
        assert "waits for a reviewer" in text_of(seen["proposal"])
    else:
        assert seen["proposal"].is_error
        assert text_of(seen["proposal"]) == (
            "propose_memory needs the contributor role or above; this API key's role is reader."
        )


@pytest.mark.e2e
def test_quire_mcp_over_stdio_answers_as_the_keys_principal(
    content: Harness, handbook: str, content_database_url: str, tmp_path: Path
) -> None:
    env = {
        "QUIRE_DATABASE_URL": content_database_url,
        "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
        "QUIRE_DATA_DIR": str(tmp_path / "data"),
        "QUIRE_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    }
    key = keys(content)
    # Claude Desktop's block for a Quire with its own PostgreSQL, as docs/mcp.md gives it; its
    # `quire` is this checkout's, run as a module.
    server = json.loads(documented_block("### With your own PostgreSQL", "json"))["mcpServers"]["quire"]
    assert Path(server["command"]).name == "quire" and server["args"] == ["mcp"]
    assert set(server["env"]) == {"QUIRE_API_KEY", "QUIRE_DATABASE_URL", "QUIRE_SECRET_KEY"}

    async def session(role: Role) -> dict[str, Any]:
        values = {**env, "QUIRE_API_KEY": key[role]}
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "quire.app.cli", *server["args"]],
            env={**env, **{name: values[name] for name in server["env"]}},
            cwd=str(Path(__file__).parents[2]),
        )
        async with Client(params, read_timeout_seconds=120) as client:
            return await exercise(client, handbook)

    check(anyio.run(session, Role.contributor), handbook, may_propose=True)
    check(anyio.run(session, Role.reader), handbook, may_propose=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[str]:
    """The API (with /mcp) on a real port, for clients that speak HTTP themselves."""
    app = create_app(settings=settings, database=content.database, services=content.services)
    app.state.kicker = content.kicker
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


@asynccontextmanager
async def with_headers(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def with_key(url: str, key: str) -> Any:
    return with_headers(url, auth(key))


def test_the_http_endpoint_answers_as_the_bearer_keys_principal(
    api: TestClient, content: Harness, handbook: str, served: str
) -> None:
    key = keys(content)
    refused = api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert api.post("/mcp", json={}, headers=auth("qk_not-a-key")).status_code == 401

    async def session(role: Role, mode: str) -> dict[str, Any]:
        async with Client(with_key(served, key[role]), mode=mode, cache=None) as client:
            return await exercise(client, handbook)

    for mode in ("auto", "legacy"):  # the 2026 protocol and the initialize handshake
        check(anyio.run(session, Role.contributor, mode), handbook, may_propose=True)
        check(anyio.run(session, Role.reader, mode), handbook, may_propose=False)

    # Cursor's block for the HTTP endpoint, as docs/mcp.md gives it.
    remote = json.loads(documented_block("### Over HTTP", "json"))["mcpServers"]["quire"]
    assert remote["url"] == f"{DOCUMENTED_BASE}/mcp" and urlsplit(served).path == "/mcp"
    headers = {
        name: value.replace("${env:QUIRE_API_KEY}", key[Role.reader])
        for name, value in remote["headers"].items()
    }

    async def documented_session() -> dict[str, Any]:
        async with Client(with_headers(served, headers), cache=None) as client:
            return await exercise(client, handbook)

    check(anyio.run(documented_session), handbook, may_propose=False)

    # Any HTTP client: the guide's curl command, run as written against this server.
    base = served.removesuffix("/mcp")
    curl = documented_block("## Any HTTP client", "sh").replace(DOCUMENTED_BASE, base)
    listed = subprocess.run(
        ["bash", "-c", curl],
        env={"PATH": "/usr/bin:/bin", "QUIRE_API_KEY": key[Role.reader]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(tool["name"] for tool in json.loads(listed.stdout)["result"]["tools"]) == sorted(SERVED)

    # The official Python SDK, as the guide's example uses it.
    example = documented_block("## Any HTTP client", "python").replace(DOCUMENTED_BASE, base)
    searched = subprocess.run(
        [sys.executable, "-c", example],
        env={**os.environ, "QUIRE_API_KEY": key[Role.reader]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert searched.returncode == 0, searched.stderr
    assert "Every employee gets 27 days of paid holiday a year" in searched.stdout
    assert "Employee handbook v 1 ['Employee handbook', 'Holidays']" in searched.stdout

    # Quire's importer speaks streamable HTTP with headers, too: here, to Quire itself, on a
    # loopback address the outbound policy allows only because the allowlist says so.
    hub = McpHub(timeout=20)
    local = OutboundPolicy.from_setting("127.0.0.1/32")
    try:
        endpoint = Endpoint(
            tenant_id=content.tenant_id,
            name="self",
            transport="http",
            url=served,
            headers=(("Authorization", f"Bearer {key[Role.reader]}"),),
            outbound=local,
        )
        assert sorted(t.name for t in hub.tools(endpoint)) == ["propose_memory", "read", "recall", "search"]
        with pytest.raises(McpUnavailable) as refused_error:
            hub.tools(
                Endpoint(
                    tenant_id=content.tenant_id,
                    name="anonymous",
                    transport="http",
                    url=served,
                    outbound=local,
                )
            )
        assert key[Role.reader] not in str(refused_error.value)
    finally:
        hub.shutdown()
