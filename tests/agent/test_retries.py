"""How the agent loop tries again (issue 18): Retry-After on 429 and 503, a target's cool-down
remembered by every run, retry policies as data (settings, routes, tools), and tool calls that
do not finish in time. Waits are asserted as the wake time the run recorded, never as time
slept."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from quire.agent.config import ModelsConfig, ModelTarget, Route, load_models
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.providers.errors import ProviderUnavailable
from quire.agent.state import AgentState
from quire.agent.tools.base import ToolContext, ToolOutput
from quire.app.services import build_services
from quire.content.models import Document
from quire.core.errors import ConfigurationError
from quire.core.models import Role as UserRole
from quire.core.models import utcnow
from quire.runtime.models import StepPublic
from quire.runtime.retry import RetryPolicy
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply, error_reply, function_call
from tests.agent.scripted import ScriptedProvider, install
from tests.harness import Harness
from tests.services import use_models


def fake_target(name: str, server: OpenAIServer) -> ModelTarget:
    return ModelTarget(
        name=name, provider="openai", model="gpt-test", base_url=server.base_url, api_key_env="FAKE_KEY"
    )


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


def start(harness: Harness, **state: Any) -> uuid.UUID:
    return harness.start("agent.answer", AgentState(role=UserRole.admin, tools=[], **state))


def seconds_until(moment: datetime | str | None) -> float:
    assert moment is not None
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return (when - utcnow()).total_seconds()


# Retry-After on 503 as on 429 (finding 12).


def test_a_503_with_retry_after_parks_the_run_as_throttled_for_that_long(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, _ = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": fake_target("a", first)},
            routes={"default": Route(name="default", targets=["a"])},
        ),
        content.database,
    )
    first.reply(error_reply(503, "Overloaded", type="server_error", headers={"retry-after": "20"}))
    run_id = start(content, question="are you there?")
    content.drive()
    run = content.run(run_id)
    assert run.status == "throttled", run.waiting_for
    assert run.waiting_for is not None and run.waiting_for["kind"] == "throttled"
    assert 17 < seconds_until(run.wake_at) <= 20
    assert 17 < seconds_until(run.waiting_for["until"]) <= 20
    assert len(first.received) == 1


# A target's cool-down, remembered across turns and runs (finding 12).


def test_a_targets_retry_after_holds_for_the_next_run_which_does_not_call_it(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, _ = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": fake_target("a", first)},
            routes={"default": Route(name="default", targets=["a"])},
        ),
        content.database,
    )
    first.reply(
        error_reply(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "30"})
    )
    parked = start(content, question="first")
    content.drive()
    assert content.run(parked).status == "throttled"

    later = start(content, question="second")
    content.drive()
    run = content.run(later)
    assert run.status == "throttled"
    assert len(first.received) == 1  # the second run did not knock on a door it was told is shut
    assert 26 < seconds_until(run.wake_at) <= 30
    assert abs(seconds_until(run.wake_at) - seconds_until(content.run(parked).wake_at)) < 3


def test_a_targets_retry_after_holds_for_the_next_turn_of_the_same_run(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, second = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": fake_target("a", first), "b": fake_target("b", second)},
            routes={"default": Route(name="default", targets=["a", "b"])},
        ),
        content.database,
    )
    first.reply(
        error_reply(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "60"})
    )
    second.reply(
        completion_reply(tool_calls=[function_call("c1", "list_collections", "{}")]),
        completion_reply("Answered by the second target twice."),
    )
    run_id = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["list_collections"])
    )
    content.drive()
    run = content.run(run_id)
    assert run.status == "completed", run.waiting_for
    assert AgentState.model_validate(run.state).answer == "Answered by the second target twice."
    assert len(first.received) == 1 and len(second.received) == 2
    assert content.events(run_id).count("model.fallback") == 2  # turn 1 skipped it: cooling down
    breaker = content.services.agent.router.breaker
    assert breaker is not None and breaker.state("a")["state"] == "cooling_down"


# Retry policies as data: a default per step kind, overridden by a route or a tool (finding 13).


def scripted_route(content: Harness, **route: Any) -> None:
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"], **route)},
        ),
        content.database,
    )


def step_named(content: Harness, run_id: uuid.UUID, prefix: str) -> StepPublic:
    return next(s for s in content.run(run_id).steps if s.name.startswith(prefix))


def failing_model(request: CompletionRequest) -> Message:
    raise ProviderUnavailable("500 internal error")


def test_the_settings_give_the_agent_its_default_policies() -> None:
    from quire.agent.retries import StepRetries
    from quire.core.settings import RetrySetting, Settings

    settings = Settings(
        model_retry=RetrySetting(max_attempts=6, base_delay=1.0, max_delay=9.0),
        tool_retry=RetrySetting(max_attempts=2, base_delay=0.1, max_delay=0.2),
        tool_timeout_seconds=12,
    )
    retries = StepRetries.from_settings(settings)
    assert retries.model == RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=9.0)
    assert retries.tool == RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=0.2)
    assert retries.tool_timeout == 12.0
    agent = build_services(settings).agent
    assert agent.retries == retries


def test_a_route_retries_its_model_calls_by_its_own_policy(content: Harness) -> None:
    install(failing_model)
    scripted_route(content, retry={"max_attempts": 1})
    run_id = start(content, question="q")
    content.drive()
    step = step_named(content, run_id, "model:0")
    assert step.status == "failed" and step.attempt == 1
    assert "step.retrying" not in content.events(run_id)
    assert len(ScriptedProvider.requests) == 1


def test_the_agents_default_model_policy_holds_for_a_route_without_one(content: Harness) -> None:
    from quire.agent.retries import StepRetries

    install(failing_model)
    scripted_route(content)
    content.services.agent.retries = StepRetries(
        model=RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=0.1)
    )
    run_id = start(content, question="q")
    content.drive(until=3)
    step = step_named(content, run_id, "model:0")
    assert step.status == "failed" and step.attempt == 2
    assert len(ScriptedProvider.requests) == 2


def test_models_toml_gives_a_route_its_retry_policy(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[targets.mini]\nprovider = "openai"\nmodel = "gpt-4.1-mini"\n\n'
        '[routes.default]\ntargets = ["mini"]\nretry = { max_attempts = 6, base_delay = 0.5 }\n'
    )
    route = load_models(models_file=str(models)).route("default")
    assert route.retry is not None
    assert route.retry.over(RetryPolicy(max_attempts=4, base_delay=2.0, max_delay=60.0)) == RetryPolicy(
        max_attempts=6, base_delay=0.5, max_delay=60.0
    )
    models.write_text(models.read_text().replace("max_attempts = 6", "max_attempts = 0"))
    with pytest.raises(ConfigurationError, match=r"retry\.max_attempts"):
        load_models(models_file=str(models))


@pytest.fixture
def tool_turns(content: Harness) -> list[CompletionRequest]:
    """A model that calls list_collections once, then answers with what the tool said."""

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(tool_calls=[ToolCall(id="c1", name="list_collections", arguments={})])
        return Message.assistant(f"the tool said: {results[0].content}")

    install(script)
    scripted_route(content)
    return ScriptedProvider.requests


def replace_tool(content: Harness, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    tools = content.services.agent.tools
    monkeypatch.setitem(tools, "list_collections", dataclasses.replace(tools["list_collections"], **changes))


def run_tool_question(content: Harness, until: float = 0.0) -> tuple[uuid.UUID, str]:
    run_id = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["list_collections"])
    )
    content.drive(until=until)
    run = content.run(run_id)
    assert run.status == "completed", run.waiting_for
    return run_id, AgentState.model_validate(run.state).answer or ""


def test_a_tool_retries_by_its_own_policy(
    content: Harness, tool_turns: list[CompletionRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def flaky(ctx: ToolContext, args: Any) -> ToolOutput:
        calls.append(1)
        raise RuntimeError("the ledger service is down")

    replace_tool(content, monkeypatch, function=flaky, retry=RetryPolicy(max_attempts=1))
    run_id, answer = run_tool_question(content)
    assert len(calls) == 1
    assert step_named(content, run_id, "tool:0:0:list_collections").attempt == 1
    assert "The tool failed: RuntimeError: the ledger service is down" in answer


def test_tools_without_a_policy_of_their_own_take_the_agents_default(
    content: Harness, tool_turns: list[CompletionRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    from quire.agent.retries import StepRetries

    calls: list[int] = []

    def flaky(ctx: ToolContext, args: Any) -> ToolOutput:
        calls.append(1)
        raise RuntimeError("the ledger service is down")

    replace_tool(content, monkeypatch, function=flaky)
    content.services.agent.retries = StepRetries(
        tool=RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=0.1)
    )
    run_id, _ = run_tool_question(content, until=3)
    assert len(calls) == 2
    assert step_named(content, run_id, "tool:0:0:list_collections").attempt == 2


# A tool call's start-to-close timeout (finding 13).


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    """A tool function that hangs until the test ends (then the lingering thread ends too)."""
    release = threading.Event()
    yield release
    release.set()


def test_a_tool_that_does_not_finish_in_time_is_abandoned_and_retried_then_told_to_the_model(
    content: Harness,
    tool_turns: list[CompletionRequest],
    monkeypatch: pytest.MonkeyPatch,
    hang: threading.Event,
) -> None:
    started: list[float] = []

    def hangs(ctx: ToolContext, args: Any) -> ToolOutput:
        started.append(time.monotonic())
        hang.wait(30)
        return ToolOutput(content="too late")

    replace_tool(
        content,
        monkeypatch,
        function=hangs,
        timeout_seconds=0.5,
        retry=RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=0.1),
    )
    run_id, answer = run_tool_question(content, until=5)
    assert len(started) == 2  # abandoned, tried once more, abandoned again
    step = step_named(content, run_id, "tool:0:0:list_collections")
    assert step.status == "failed" and step.attempt == 2
    assert "list_collections did not finish within 0.5 s" in answer
    assert "list_collections did not finish within 0.5 s" in (step.error or "")


def test_the_default_tool_timeout_holds_for_tools_without_one(
    content: Harness,
    tool_turns: list[CompletionRequest],
    monkeypatch: pytest.MonkeyPatch,
    hang: threading.Event,
) -> None:
    from quire.agent.retries import StepRetries

    def hangs(ctx: ToolContext, args: Any) -> ToolOutput:
        hang.wait(30)
        return ToolOutput(content="too late")

    replace_tool(content, monkeypatch, function=hangs)
    content.services.agent.retries = StepRetries(tool=RetryPolicy(max_attempts=1), tool_timeout=0.5)
    _, answer = run_tool_question(content, until=3)
    assert "list_collections did not finish within 0.5 s" in answer


def test_a_tool_that_finishes_in_time_still_works_in_its_step(
    content: Harness, tool_turns: list[CompletionRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool runs on a helper thread, with the step's transaction and seq: it acts as the
    run's tenant, and what it writes commits with the step."""
    seen: dict[str, Any] = {}

    def writes(ctx: ToolContext, args: Any) -> ToolOutput:
        seen["key"] = ctx.run.idempotency_key
        seen["tenant"] = ctx.session.execute(text("SELECT quire_current_tenant()")).scalar()
        ctx.session.add(Document(tenant_id=ctx.tenant_id, source_key="by-the-tool", title="by the tool"))
        return ToolOutput(content="fine")

    replace_tool(content, monkeypatch, function=writes, timeout_seconds=5)
    run_id, answer = run_tool_question(content)
    assert answer == "the tool said: fine"
    assert seen["key"].startswith(f"{run_id}:") and seen["tenant"] == content.tenant_id
    with content.database.tenant_session(content.tenant_id) as session:
        written = session.execute(text("SELECT source_key FROM content_document")).scalars().all()
    assert written == ["by-the-tool"]
