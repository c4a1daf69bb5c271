"""Streamed answers (issue 18, finding 11): each `model.delta` carries its step's attempt, and
when an attempt that streamed text is abandoned (its call failed and another attempt follows, or
its target failed mid-stream and the route fell back to the next) a `model.retry` event tells
clients to drop what that step streamed so far. A client that follows the rule shows the answer
once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.state import AgentState
from quire.core.models import Role as UserRole
from tests.agent.fakes.openai_server import OpenAIServer, chunk, stream_reply
from tests.agent.fakes.server import Reply, data_event, sse_reply
from tests.harness import Harness
from tests.services import use_models

ANSWER = ["The answer ", "is ", "42."]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


def target(name: str, server: OpenAIServer) -> ModelTarget:
    return ModelTarget(
        name=name, provider="openai", model="gpt-test", base_url=server.base_url, api_key_env="FAKE_KEY"
    )


def broken_stream(*pieces: str) -> Reply:
    """A stream that sends some text, then an error event: the call fails mid-answer."""
    error = {"error": {"message": "The server is overloaded", "type": "server_error", "code": None}}
    events = [data_event(chunk({"role": "assistant", "content": ""}))]
    events += [data_event(chunk({"content": piece})) for piece in pieces]
    return sse_reply([*events, data_event(error)])


def events(harness: Harness, run_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    with harness.database.tenant_session(harness.tenant_id) as session:
        rows = session.execute(
            text("SELECT type, data FROM runtime_event WHERE run_id = :id ORDER BY id"), {"id": run_id}
        )
        return [(row[0], row[1] or {}) for row in rows]


def shown(timeline: list[tuple[str, dict[str, Any]]]) -> str:
    """What a client shows that appends each delta and drops the step's text on model.retry."""
    text_so_far: list[str] = []
    for kind, data in timeline:
        if kind == "model.delta":
            text_so_far.append(data["text"])
        elif kind == "model.retry":
            text_so_far.clear()
    return "".join(text_so_far)


def stream_run(harness: Harness) -> uuid.UUID:
    return harness.start("agent.answer", AgentState(question="q", role=UserRole.admin, tools=[], stream=True))


def test_a_failed_attempts_text_is_withdrawn_before_the_next_attempt_streams(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, _ = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": target("a", first)},
            routes={"default": Route(name="default", targets=["a"], retry={"base_delay": 0.1})},
        ),
        content.database,
    )
    first.reply(broken_stream("The ans"), stream_reply(text=ANSWER))
    run_id = stream_run(content)
    content.drive(until=3)
    run = content.run(run_id)
    assert run.status == "completed"
    assert AgentState.model_validate(run.state).answer == "The answer is 42."

    timeline = [(k, d) for k, d in events(content, run_id) if k in ("model.delta", "model.retry")]
    assert [(k, d.get("text"), d["attempt"]) for k, d in timeline] == [
        ("model.delta", "The ans", 1),
        ("model.retry", None, 1),
        ("model.delta", "The answer ", 2),
        ("model.delta", "is ", 2),
        ("model.delta", "42.", 2),
    ]
    retry = timeline[1][1]
    assert retry["target"] == "a" and "overloaded" in retry["error"]
    assert shown(timeline) == "The answer is 42."


def test_a_fallback_mid_stream_withdraws_the_first_targets_text(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, second = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": target("a", first), "b": target("b", second)},
            routes={"default": Route(name="default", targets=["a", "b"])},
        ),
        content.database,
    )
    first.reply(broken_stream("The ", "ans"))
    second.reply(stream_reply(text=ANSWER))
    run_id = stream_run(content)
    content.drive()
    assert content.run(run_id).status == "completed"

    timeline = [(k, d) for k, d in events(content, run_id) if k in ("model.delta", "model.retry")]
    assert [(k, d.get("text"), d["attempt"]) for k, d in timeline] == [
        ("model.delta", "The ", 1),
        ("model.delta", "ans", 1),
        ("model.retry", None, 1),  # the same attempt, another target
        ("model.delta", "The answer ", 1),
        ("model.delta", "is ", 1),
        ("model.delta", "42.", 1),
    ]
    assert timeline[2][1]["target"] == "a"
    assert shown(timeline) == "The answer is 42."


def test_a_fallback_before_any_text_withdraws_nothing(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, second = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": target("a", first), "b": target("b", second)},
            routes={"default": Route(name="default", targets=["a", "b"])},
        ),
        content.database,
    )
    first.reply(broken_stream())
    second.reply(stream_reply(text=ANSWER))
    run_id = stream_run(content)
    content.drive()
    kinds = [k for k, _ in events(content, run_id)]
    assert "model.retry" not in kinds and kinds.count("model.delta") == 3
