"""How the agent loop tries again (issue 18): Retry-After on 429 and 503, a target's cool-down
remembered by every run, retry policies as data (settings, routes, tools), and tool calls that
do not finish in time. Waits are asserted as the wake time the run recorded, never as time
slept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.loop import AgentState
from quire.core.models import Role as UserRole
from quire.core.models import utcnow
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply, error_reply, function_call
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
