"""Tools imported from an external MCP server (a stdio process the test starts): registered and
synced into the catalog, found with find_tools, loaded and called through the agent loop; a
change of the server's tool list reaches the catalog; failures and secrets are handled."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.errors import ToolTimedOut
from quire.agent.mcp.access import McpAccess, mcp_access
from quire.agent.mcp.calls import call_mcp_tool, install_mcp
from quire.agent.mcp.hub import get_hub, set_change_handler
from quire.agent.mcp.models import McpServer
from quire.agent.mcp.server import CallerRun
from quire.agent.mcp.watcher import McpWatcher
from quire.agent.messages import CompletionRequest, Message, ToolCall
from quire.agent.messages import Role as MessageRole
from quire.agent.state import AgentState
from quire.agent.tools.base import ToolContext
from quire.agent.tools.catalog import CatalogTool, get_tool
from quire.core.models import Role
from quire.core.settings import Settings
from tests.agent.scripted import ScriptedProvider, install
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models

pytestmark = pytest.mark.e2e  # the MCP servers are processes of their own

FAKE_SERVER = Path(__file__).parent / "fakes" / "mcp_tools_server.py"
SECRET = "sekret-token-4711"

Turn = Callable[[list[Message]], Message]


@pytest.fixture
def access(settings: Settings) -> McpAccess:
    """The same key and outbound policy as the API's (the session's settings)."""
    return mcp_access(settings)


@pytest.fixture
def mcp(content: Harness, access: McpAccess) -> Iterator[None]:
    install(lambda request: Message.assistant("unused"))
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    content.services.agent.remote_callers["mcp"] = install_mcp(
        content.database, access, content.services.content
    )
    yield
    set_change_handler(None)
    hub = get_hub()
    for key in hub.connected():
        if key[0] == content.tenant_id:
            hub.close(key)


def admin(content: Harness) -> dict[str, str]:
    return auth(make_key(content.database, TenantFixture(id=content.tenant_id, name="mcp"), Role.admin))


def register(api: TestClient, headers: dict[str, str], state: Path, *, legacy: bool) -> dict[str, Any]:
    spec = {
        "name": "fx",
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(FAKE_SERVER), *(["--legacy"] if legacy else [])],
        "env": {"FAKE_MCP_STATE": str(state), "FAKE_MCP_TOKEN": SECRET},
    }
    # A stdio server is a command on the worker hosts: tenant admins may add one only when allowed.
    refused = api.post("/v1/tools/mcp-servers", json=spec, headers=headers)
    assert refused.status_code == 422 and "stdio" in refused.json()["error"]["message"]
    settings = api.app.state.settings  # type: ignore[attr-defined]
    api.app.state.settings = settings.model_copy(update={"mcp_allow_stdio": True})  # type: ignore[attr-defined]
    response = api.post("/v1/tools/mcp-servers", json=spec, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def scripted(*turns: Turn) -> None:
    """The model's turns, each chosen from the messages so far (the last one answers)."""

    def script(request: CompletionRequest) -> Message:
        turn = sum(1 for m in request.messages if m.role == MessageRole.assistant)
        return turns[turn](request.messages)

    install(script)


def call(name: str, **arguments: Any) -> Turn:
    return lambda messages: Message.assistant(
        tool_calls=[ToolCall(id=f"c{len(messages)}", name=name, arguments=arguments)]
    )


def answer_with_last_result(messages: list[Message]) -> Message:
    return Message.assistant(messages[-1].content)


def run(content: Harness, question: str) -> AgentState:
    run_id = content.start("agent.answer", AgentState(question=question, role=Role.contributor, tools=[]))
    content.drive()
    described = content.run(run_id)
    assert described.status == "completed", described
    return AgentState.model_validate(described.state)


def catalog_entry(content: Harness, name: str) -> CatalogTool | None:
    with content.database.tenant_session(content.tenant_id) as session:
        return get_tool(session, name=name)


def wait_for_tool(content: Harness, name: str, timeout: float = 30.0) -> CatalogTool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = catalog_entry(content, name)
        if entry is not None:
            return entry
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached the catalog")


@pytest.mark.parametrize("legacy", [False, True], ids=["sdk-server", "legacy-server"])
def test_an_imported_tool_is_found_loaded_and_called_and_a_list_change_is_picked_up(
    api: TestClient, content: Harness, mcp: None, tmp_path: Path, legacy: bool
) -> None:
    registered = register(api, admin(content), tmp_path / "state.json", legacy=legacy)
    assert registered["error"] is None and registered["added"] == 3
    assert registered["server"]["tool_count"] == 3 and registered["server"]["last_error"] is None
    assert registered["server"]["env_names"] == ["FAKE_MCP_STATE", "FAKE_MCP_TOKEN"]
    assert catalog_entry(content, "weather_forecast") is None

    found: list[str] = []

    def load_what_was_found(messages: list[Message]) -> Message:
        found.extend(line[2:].split(":")[0] for line in messages[-1].content.splitlines() if line[:2] == "- ")
        return call("load_tools", names=["convert_currency"])(messages)

    scripted(
        call("find_tools", query="convert an amount of money into another currency"),
        load_what_was_found,
        call("convert_currency", amount=3, from_currency="EUR", to_currency="USD"),
        answer_with_last_result,
    )
    state = run(content, "How much is 3 EUR in USD?")
    assert found[0] == "convert_currency"
    assert state.answer == "3.00 EUR = 3.30 USD", state
    assert "convert_currency" in [t.name for t in ScriptedProvider.requests[2].tools]  # loaded from turn 2

    # The model switches forecasts on; the server says its list changed; the catalog follows.
    scripted(
        call("load_tools", names=["enable_forecasts"]),
        call("enable_forecasts"),
        answer_with_last_result,
    )
    assert run(content, "Turn on forecasts").answer == "Weather forecasts are on."
    entry = wait_for_tool(content, "weather_forecast")
    assert entry.source == "mcp:fx" and entry.role == Role.reader and not entry.side_effects

    scripted(
        call("find_tools", query="weather forecast for a city"),
        call("load_tools", names=["weather_forecast"]),
        call("weather_forecast", city="Oslo"),
        answer_with_last_result,
    )
    assert run(content, "Weather in Oslo tomorrow?").answer == "Tomorrow in Oslo: sunny, 21 °C."


def test_annotations_names_secrets_failures_and_the_periodic_resync(
    api: TestClient, content: Harness, mcp: None, access: McpAccess, tmp_path: Path
) -> None:
    headers = admin(content)
    state = tmp_path / "state.json"
    registered = register(api, headers, state, legacy=False)
    assert SECRET not in json.dumps(registered)
    listed = api.get("/v1/tools/mcp-servers", headers=headers).json()
    assert listed["count"] == 1 and SECRET not in json.dumps(listed)

    convert, enable, whoami = (
        catalog_entry(content, n) for n in ("convert_currency", "enable_forecasts", "fake_whoami")
    )
    assert convert is not None and convert.role == Role.reader and not convert.side_effects
    assert convert.summary == "Convert an amount of money from one currency to another."
    assert convert.parameters["required"] == ["amount", "from_currency", "to_currency"]
    assert enable is not None and enable.side_effects and not enable.requires_approval
    assert enable.role == Role.contributor
    # No annotations: it may do anything, so a person approves each call. Its dotted name is
    # rewritten for the providers and matched back when called.
    assert whoami is not None and whoami.side_effects and whoami.requires_approval

    with content.database.tenant_session(content.tenant_id) as session:
        context = ToolContext(
            run=CallerRun(session=session, tenant_id=content.tenant_id),  # type: ignore[arg-type]
            role=Role.admin,
            principal_id=None,
            agent="test",
        )
        output = call_mcp_tool(context, "mcp:fx", "fake_whoami", {}, access=access)
    assert output.content == "token: yes" and not output.is_error

    # A change the server announces to nobody: the periodic re-sync catches it.
    state.write_text(json.dumps({"forecasts": True}))
    assert McpWatcher(content.database, access=access, content=content.services.content).run_once() == 1
    assert catalog_entry(content, "weather_forecast") is not None

    # The server breaks: the error is kept on the server, the catalog keeps its tools.
    with content.database.tenant_session(content.tenant_id) as session:
        server = session.get(McpServer, uuid.UUID(registered["server"]["id"]))
        assert server is not None
        server.args = ["-c", "import sys; sys.exit(3)"]
        session.add(server)
        session.commit()
    synced = api.post("/v1/tools/mcp-servers/fx/sync", headers=headers).json()
    assert synced["error"] and synced["server"]["last_error"] == synced["error"]
    assert SECRET not in json.dumps(synced)
    assert catalog_entry(content, "convert_currency") is not None

    reader = auth(make_key(content.database, TenantFixture(id=content.tenant_id, name="mcp"), Role.reader))
    assert api.get("/v1/tools/mcp-servers", headers=reader).status_code == 403
    assert api.delete("/v1/tools/mcp-servers/fx", headers=headers).status_code == 204
    assert catalog_entry(content, "convert_currency") is None
    assert api.get("/v1/tools/mcp-servers/fx", headers=headers).status_code == 404


def test_an_imported_tool_call_is_given_the_steps_time_limit(
    api: TestClient, content: Harness, mcp: None, access: McpAccess, tmp_path: Path
) -> None:
    """The stdio call itself ends at the limit (issue 18), so no worker thread hangs on it."""
    headers = admin(content)
    api.app.state.settings = api.app.state.settings.model_copy(update={"mcp_allow_stdio": True})  # type: ignore[attr-defined]
    spec = {
        "name": "fx",
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(FAKE_SERVER)],
        "env": {"FAKE_MCP_STATE": str(tmp_path / "state.json"), "FAKE_MCP_SLOW": "1"},
    }
    assert api.post("/v1/tools/mcp-servers", json=spec, headers=headers).status_code == 201

    with content.database.tenant_session(content.tenant_id) as session:
        context = ToolContext(
            run=CallerRun(session=session, tenant_id=content.tenant_id),  # type: ignore[arg-type]
            role=Role.admin,
            principal_id=None,
            agent="test",
            timeout=1.0,
        )
        with pytest.raises(ToolTimedOut, match="slow_echo did not finish within 1 s"):
            call_mcp_tool(context, "mcp:fx", "slow_echo", {"text": "late", "seconds": 20}, access=access)
        quick = call_mcp_tool(
            context, "mcp:fx", "slow_echo", {"text": "in time", "seconds": 0}, access=access
        )
    assert quick.content == "in time" and not quick.is_error
