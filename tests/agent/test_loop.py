"""The agent loop on the runtime: the offline provider's cited answers, fallbacks and parking on
real adapters pointed at fake provider servers, crash safety of model calls, tool errors, human
answers, budgets, and context discipline."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quire.agent.config import ModelsConfig, ModelTarget, Route, offline_config
from quire.agent.context import fit, message_tokens, tools_tokens
from quire.agent.costs import Budget
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.state import AgentState
from quire.core.models import Role as UserRole
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply, error_reply
from tests.agent.scripted import ScriptedProvider, install
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models

HANDBOOK = """# Employee handbook

## Holidays

Every employee gets 27 days of paid holiday a year, plus public holidays.

Unused holiday days expire at the end of March.

## Equipment

Laptops are replaced every three years.
"""


def keys(harness: Harness) -> dict[UserRole, dict[str, str]]:
    tenant = TenantFixture(id=harness.tenant_id, name="agent")
    return {role: auth(make_key(harness.database, tenant, role)) for role in UserRole}


@pytest.fixture
def offline(content: Harness) -> Iterator[None]:
    use_models(content.services, offline_config(), content.database)
    yield
    use_models(content.services, offline_config(), None)


def test_the_offline_provider_answers_with_a_correct_citation(
    api: TestClient, content: Harness, offline: None
) -> None:
    key = keys(content)
    document = api.post(
        "/v1/documents",
        files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
        headers=key[UserRole.contributor],
    ).json()
    content.drive()
    started = api.post(
        "/v1/agent/runs",
        json={"question": "How many days of paid holiday do employees get?"},
        headers=key[UserRole.reader],
    )
    assert started.status_code == 202
    run_id = started.json()["id"]
    content.drive()
    run = api.get(f"/v1/agent/runs/{run_id}", headers=key[UserRole.reader]).json()
    assert run["status"] == "completed", run
    assert run["answer"].startswith("Extractive answer")
    assert '"Every employee gets 27 days of paid holiday a year, plus public holidays." [' in run["answer"]
    cited = run["citations"][0]
    assert cited["document_id"] == document["document_id"] and cited["section"][-1] == "Holidays"
    assert f"[{cited['n']}]" in run["answer"]
    names = [s["name"] for s in run["steps"]]
    assert (
        names[:2] == ["sync-tools", "start"]
        and "model:0" in names
        and any(n.startswith("tool:0:0:search_content") for n in names)
    )
    assert any(n.startswith("tool:1:0:read_section") for n in names)  # it read the section, too
    assert run["model_calls"] == 3 and run["cost_usd"] == 0.0


def fake_target(name: str, server: OpenAIServer, **prices: float) -> ModelTarget:
    return ModelTarget(
        name=name,
        provider="openai",
        model="gpt-test",
        base_url=server.base_url,
        api_key_env="FAKE_KEY",
        **prices,
    )


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


def start(harness: Harness, **state: Any) -> uuid.UUID:
    return harness.start("agent.answer", AgentState(role=UserRole.admin, tools=[], **state))


def test_a_rate_limited_target_falls_back_to_the_next(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, second = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={
                "a": fake_target("a", first),
                "b": fake_target("b", second, price_input=1.0, price_output=2.0),
            },
            routes={"default": Route(name="default", targets=["a", "b"])},
        ),
        content.database,
    )
    first.reply(
        error_reply(
            429,
            "Rate limit reached",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "3"},
        )
    )
    second.reply(completion_reply("From the second target."))
    run_id = start(content, question="hello?")
    content.drive()
    run = content.run(run_id)
    assert run.status == "completed"
    state = AgentState.model_validate(run.state)
    assert state.answer == "From the second target." and state.targets == ["b"]
    assert state.spend.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1_000_000)
    assert "model.fallback" in content.events(run_id)
    assert len(first.received) == 1 and len(second.received) == 1


def test_without_a_fallback_the_run_parks_and_holds_no_worker(
    content: Harness, servers: tuple[OpenAIServer, OpenAIServer]
) -> None:
    first, second = servers
    use_models(
        content.services,
        ModelsConfig(
            targets={"a": fake_target("a", first), "b": fake_target("b", second)},
            routes={
                "default": Route(name="default", targets=["a"]),
                "other": Route(name="other", targets=["b"]),
            },
        ),
        content.database,
    )
    first.reply(
        error_reply(
            429,
            "Rate limit reached",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "3"},
        ),
        completion_reply("Answered after the wait."),
    )
    second.reply(completion_reply("Meanwhile, another run."))
    parked = start(content, question="wait for me")
    began = time.monotonic()
    content.drive()
    run = content.run(parked)
    assert (
        run.status == "throttled" and run.waiting_for is not None and run.waiting_for["kind"] == "throttled"
    )
    other = start(content, question="and me?", route="other")
    content.drive()  # the executor is free: the other run goes through while the first is parked
    assert content.run(other).status == "completed"
    assert content.run(parked).status == "throttled"
    run = content.drive_until(parked, "completed")
    assert time.monotonic() - began >= 3.0
    assert AgentState.model_validate(run.state).answer == "Answered after the wait."


class Crash(BaseException):
    pass


def test_a_crash_during_a_model_call_repeats_it_once_and_after_it_never(content: Harness) -> None:
    calls: Counter[str] = Counter()
    plan = {"crash_in_call": True, "crash_after": True}

    def script(request: CompletionRequest) -> Message:
        turn = sum(1 for m in request.messages if m.role == Role.assistant)
        calls[f"turn{turn}"] += 1
        if turn == 0 and plan["crash_in_call"]:
            plan["crash_in_call"] = False
            raise Crash("the worker dies while the provider is answering")
        if turn == 0:
            return Message.assistant(tool_calls=[ToolCall(id="c1", name="list_collections", arguments={})])
        return Message.assistant("done")

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.harness_start = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["list_collections"])
    )
    deadline = time.monotonic() + 20
    while content.run(run_id).status != "completed" and time.monotonic() < deadline:
        with contextlib.suppress(Crash):
            content.drive(until=0.5)
    assert content.run(run_id).status == "completed"
    assert calls == {"turn0": 2, "turn1": 1}  # interrupted once and made again; never a third time

    # Now kill the worker right after the first model call was recorded (in the tool call that
    # follows it): the model call is not made again.
    calls.clear()
    import dataclasses

    tools = content.services.agent.tools
    real = tools["list_collections"]
    seen = {"crashed": False}

    def crash_once(ctx: Any, args: Any) -> Any:
        if not seen["crashed"]:
            seen["crashed"] = True
            raise Crash("dies between the model call and the tool call")
        return real.function(ctx, args)

    tools["list_collections"] = dataclasses.replace(real, function=crash_once)
    try:
        run_id = content.start(
            "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["list_collections"])
        )
        deadline = time.monotonic() + 20
        while content.run(run_id).status != "completed" and time.monotonic() < deadline:
            with contextlib.suppress(Crash):
                content.drive(until=0.5)
    finally:
        tools["list_collections"] = real
    assert seen["crashed"] and content.run(run_id).status == "completed"
    assert calls == {"turn0": 1, "turn1": 1}


def test_invalid_and_unknown_tool_calls_go_back_to_the_model(content: Harness) -> None:
    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(
                tool_calls=[
                    ToolCall(id="bad", name="search_content", arguments={"k": 500}),
                    ToolCall(id="ghost", name="delete_everything", arguments={}),
                    ToolCall(
                        id="junk",
                        name="list_collections",
                        raw_arguments="{not json",
                        parse_error="arguments are not valid JSON",
                    ),
                ]
            )
        return Message.assistant(" | ".join(m.content for m in results))

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer",
        AgentState(question="q", role=UserRole.reader, tools=["search_content", "list_collections"]),
    )
    content.drive()
    answer = AgentState.model_validate(content.run(run_id).state).answer or ""
    assert "invalid arguments: query: Field required; k: Input should be less than or equal to 20" in answer
    assert "There is no tool 'delete_everything'" in answer
    assert "arguments are not valid JSON" in answer
    errors = [m for m in ScriptedProvider.requests[1].messages if m.role == Role.tool]
    assert all(m.is_error for m in errors) and [m.tool_call_id for m in errors] == ["bad", "ghost", "junk"]


def test_ask_human_waits_for_a_person(api: TestClient, content: Harness) -> None:
    key = keys(content)

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(
                tool_calls=[ToolCall(id="ask", name="ask_human", arguments={"question": "Which office?"})]
            )
        return Message.assistant(f"Noted: {results[0].content}")

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer", AgentState(question="Book a desk", role=UserRole.reader, tools=["ask_human"])
    )
    content.drive()
    assert content.run(run_id).status == "waiting"
    task = api.get("/v1/tasks", headers=key[UserRole.reader]).json()["data"][0]
    assert task["title"] == "Which office?"
    decided = api.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"decision": "answer", "comment": "Oslo"},
        headers=key[UserRole.reader],
    )
    assert decided.status_code == 200
    content.drive()
    assert AgentState.model_validate(content.run(run_id).state).answer == "Noted: A person answered: Oslo"


def test_a_budget_ends_the_run_cleanly_with_the_reason(content: Harness) -> None:
    install(
        lambda request: Message.assistant(
            tool_calls=[ToolCall(id=f"c{len(request.messages)}", name="list_collections", arguments={})]
        )
    )
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m", price_input=100_000.0)},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer",
        AgentState(
            question="loop forever",
            role=UserRole.reader,
            tools=["list_collections"],
            budget=Budget(max_cost_usd=1.0),
        ),
    )
    content.drive()
    run = content.run(run_id)
    state = AgentState.model_validate(run.state)
    assert run.status == "failed" and run.error_code == "budget_exceeded" and state.answer is None
    assert state.stop_reason is not None and state.stop_reason.startswith("the run cost $")


def history_of(turns: int) -> list[Message]:
    history = [
        Message.system("You are helpful.\n\nFacts to keep in mind:\n- The office code is 4417."),
        Message.user("Collect everything."),
    ]
    for turn in range(turns):
        calls = [ToolCall(id=f"t{turn}a", name="search_content", arguments={"query": f"item {turn}"})]
        if turn % 3 == 0:
            calls.append(ToolCall(id=f"t{turn}b", name="recall_memory", arguments={"query": f"item {turn}"}))
        history.append(Message.assistant(tool_calls=calls))
        for call in calls:
            history.append(Message.tool_result(call, f"result of {call.id}: " + "lorem ipsum " * 40))
    return history


def assert_well_formed(prompt: list[Message], budget: int) -> None:
    assert sum(message_tokens(m) for m in prompt) <= budget
    assert "The office code is 4417." in prompt[0].content and prompt[1].content == "Collect everything."
    for index, message in enumerate(prompt):
        if message.role == Role.tool:  # a result follows the assistant message that called it
            back = index - 1
            while prompt[back].role == Role.tool:
                back -= 1
            assert message.tool_call_id in {c.id for c in prompt[back].tool_calls}
        if message.role == Role.assistant and message.tool_calls:
            following = {m.tool_call_id for m in prompt[index + 1 : index + 1 + len(message.tool_calls)]}
            assert following == {c.id for c in message.tool_calls}


def test_compaction_of_a_200_turn_conversation_keeps_pairs_and_pinned_facts() -> None:
    history = history_of(200)
    for budget in (1500, 4000, 12000):
        prompt = fit(history, tools=[], budget_tokens=budget)
        assert_well_formed(prompt, budget)
        assert prompt[2].content.startswith("Summary of earlier steps")
        assert prompt[-1] is history[-1]  # the newest turn is always there
    assert fit(history_of(3), tools=[], budget_tokens=100_000) == history_of(3)
    assert tools_tokens([]) == 0


def test_the_loop_keeps_every_prompt_within_budget(content: Harness) -> None:
    def script(request: CompletionRequest) -> Message:
        turn = sum(1 for m in request.messages if m.role == Role.assistant)
        compacted = len(request.messages) > 2 and request.messages[2].content.startswith("Summary")
        if turn < 6 or (turn < 30 and not compacted):
            return Message.assistant(
                tool_calls=[
                    ToolCall(id=f"c{len(ScriptedProvider.requests)}", name="list_collections", arguments={})
                ]
            )
        return Message.assistant("enough")

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    budget = 900
    run_id = content.start(
        "agent.answer",
        AgentState(
            question="Collect everything.",
            role=UserRole.reader,
            tools=["list_collections"],
            context_tokens=budget,
            pinned=["The office code is 4417."],
            budget=Budget(max_steps=60),
        ),
    )
    content.drive()
    assert content.run(run_id).status == "completed"
    prompts = [r.messages for r in ScriptedProvider.requests]
    assert any(len(p) > 2 and p[2].content.startswith("Summary") for p in prompts), "compaction happened"
    prefix = prompts[0][0].content
    for prompt in prompts:
        assert prompt[0].content == prefix  # the stable prefix providers cache
        assert "The office code is 4417." in prompt[0].content
        assert (
            sum(message_tokens(m) for m in prompt) + tools_tokens(ScriptedProvider.requests[0].tools)
            <= budget
        )


def test_a_missing_document_is_told_to_the_model_at_once_not_retried(content: Harness) -> None:
    """A tool's "not found" is permanent: one attempt, and the model hears the reason (issue 17)."""
    missing = uuid.uuid4()

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            arguments = {"document_id": str(missing), "element_id": str(uuid.uuid4())}
            return Message.assistant(tool_calls=[ToolCall(id="c1", name="read_section", arguments=arguments)])
        return Message.assistant(f"the tool said: {results[0].content}")

    install(script)
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    run_id = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["read_section"])
    )
    content.drive(until=5)
    run = content.run(run_id)
    assert run.status == "completed"
    step = next(s for s in run.steps if s.name.startswith("tool:0:0:read_section"))
    assert step.attempt == 1 and step.status == "completed"
    assert step.result["is_error"] and str(missing) in step.result["content"]
    assert "retry" not in " ".join(content.events(run_id))
