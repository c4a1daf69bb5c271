"""Runs that never lie (issue 18): end states with codes, time that counts only while working, a
deadline, cancellation that interrupts a call in flight, no transaction held during a model call,
a worker that hands its runs over when it stops, and retrying a failed run from its failed step.

Each test here was written against the code before the change and failed there."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.costs import Budget
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.state import AgentState
from quire.core.models import Role as UserRole
from quire.runtime.executor import Executor
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply, error_reply
from tests.agent.fakes.server import Reply
from tests.agent.scripted import install
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models


def keys(harness: Harness) -> dict[UserRole, dict[str, str]]:
    tenant = TenantFixture(id=harness.tenant_id, name="honest")
    return {role: auth(make_key(harness.database, tenant, role)) for role in UserRole}


def scripted(harness: Harness, **prices: float) -> None:
    use_models(
        harness.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m", **prices)},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        harness.database,
    )


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, content: Harness) -> Iterator[OpenAIServer]:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    # A target of its own per test: the circuit breaker's state is shared by every run.
    target = f"a-{uuid.uuid4().hex[:8]}"
    with OpenAIServer() as made:
        use_models(
            content.services,
            ModelsConfig(
                targets={
                    target: ModelTarget(
                        name=target,
                        provider="openai",
                        model="gpt-test",
                        base_url=made.base_url,
                        api_key_env="FAKE_KEY",
                    )
                },
                routes={"default": Route(name="default", targets=[target])},
            ),
            content.database,
        )
        yield made


def start(harness: Harness, **state: Any) -> uuid.UUID:
    return harness.start("agent.answer", AgentState(**{"role": UserRole.admin, "tools": [], **state}))


def run_row(harness: Harness, run_id: uuid.UUID) -> dict[str, Any]:
    with harness.database.tenant_session(harness.tenant_id) as session:
        row = session.execute(
            text("SELECT status, error, error_code, recoveries FROM runtime_run WHERE id = :id"),
            {"id": run_id},
        ).one()
    return dict(row._mapping)


def test_a_budget_stop_ends_the_run_failed_with_its_code(content: Harness) -> None:
    install(
        lambda request: Message.assistant(
            tool_calls=[ToolCall(id=f"c{len(request.messages)}", name="list_collections", arguments={})]
        )
    )
    scripted(content, price_input=100_000.0)
    run_id = start(
        content, question="loop forever", tools=["list_collections"], budget=Budget(max_cost_usd=1.0)
    )
    content.drive()
    run = content.run(run_id)
    assert run.status == "failed" and run.error_code == "budget_exceeded"
    assert run.error is not None and run.error.startswith("the run cost $")
    assert "run.failed" in content.events(run_id)
    state = AgentState.model_validate(run.state)
    assert state.answer is None and state.spend.model_calls >= 1  # what it spent is still shown


def test_a_provider_outage_ends_failed_with_provider_unavailable(
    content: Harness, server: OpenAIServer
) -> None:
    server.reply(*[error_reply(500, "upstream exploded", type="server_error")] * 8)
    run_id = start(content, question="anyone there?")
    content.drive(until=30)
    run = content.run(run_id)
    assert run.status == "failed" and run.error_code == "provider_unavailable", run


def test_a_persons_wait_is_not_working_time(api: TestClient, content: Harness) -> None:
    """max_seconds counts working time: an answer given after the budget's seconds still counts."""

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(
                tool_calls=[ToolCall(id="ask", name="ask_human", arguments={"question": "Which office?"})]
            )
        if len(results) == 1:
            return Message.assistant(tool_calls=[ToolCall(id="l", name="list_collections", arguments={})])
        return Message.assistant(f"Noted: {results[0].content}")

    install(script)
    scripted(content)
    run_id = content.start(
        "agent.answer",
        AgentState(
            question="Book a desk",
            role=UserRole.reader,
            tools=["ask_human", "list_collections"],
            budget=Budget(max_seconds=4.0),
        ),
    )
    content.drive()
    assert content.run(run_id).status == "waiting"
    time.sleep(4.5)  # the person takes longer than the whole time budget
    key = keys(content)
    task = api.get("/v1/tasks", headers=key[UserRole.reader]).json()["data"][0]
    api.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"decision": "answer", "comment": "Oslo"},
        headers=key[UserRole.reader],
    )
    content.drive()
    run = content.run(run_id)
    assert run.status == "completed", run
    assert AgentState.model_validate(run.state).answer == "Noted: A person answered: Oslo"


def test_a_deadline_ends_a_throttled_run(api: TestClient, content: Harness, server: OpenAIServer) -> None:
    """Parked on a provider's Retry-After, the run still ends at its wall-clock deadline."""
    throttled = error_reply(429, "slow down", type="requests", headers={"retry-after": "30"})
    server.reply(*[throttled] * 3)
    key = keys(content)
    started = api.post(
        "/v1/agent/runs", json={"question": "hello?", "deadline_seconds": 1.5}, headers=key[UserRole.reader]
    )
    assert started.status_code == 202, started.text
    run_id = uuid.UUID(started.json()["id"])
    content.drive()
    assert content.run(run_id).status == "throttled"
    content.drive(until=4)
    run = content.run(run_id)
    assert run.status == "failed" and run.error_code == "deadline_exceeded", run
    described = api.get(f"/v1/agent/runs/{run_id}", headers=key[UserRole.reader]).json()
    assert described["error_code"] == "deadline_exceeded" and described["answer"] is None


def drive_in_background(harness: Harness) -> threading.Thread:
    thread = threading.Thread(target=harness.drive, daemon=True)
    thread.start()
    return thread


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cancel_interrupts_a_model_call_in_flight(
    api: TestClient, content: Harness, server: OpenAIServer
) -> None:
    server.reply(Reply(**{**completion_reply("too late").__dict__, "delay": 20.0}))
    run_id = start(content, question="slow")
    began = time.monotonic()
    thread = drive_in_background(content)
    wait_for(lambda: len(server.received) == 1)
    key = keys(content)
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=key[UserRole.admin]).status_code == 202
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert time.monotonic() - began < 10  # not the 20 s the call would have taken
    run = content.run(run_id)
    assert run.status == "cancelled", run
    with content.database.tenant_session(content.tenant_id) as session:
        assert session.execute(text("SELECT count(*) FROM agent_usage")).scalar() == 0


def test_no_transaction_is_open_during_a_model_call(content: Harness, server: OpenAIServer) -> None:
    server.reply(Reply(**{**completion_reply("eventually").__dict__, "delay": 2.5}))
    run_id = start(content, question="slow")
    thread = drive_in_background(content)
    wait_for(lambda: len(server.received) == 1)
    time.sleep(1.0)
    with content.database.engine.connect() as connection:
        idle = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        ).scalar()
    thread.join(timeout=15)
    assert idle == 0
    assert content.run(run_id).status == "completed"


def test_a_stopping_worker_hands_its_run_over_without_a_recovery(
    content: Harness, server: OpenAIServer
) -> None:
    server.reply(
        Reply(**{**completion_reply("from the first worker").__dict__, "delay": 20.0}),
        completion_reply("from the next worker"),
    )
    run_id = start(content, question="slow")
    thread = drive_in_background(content)
    wait_for(lambda: len(server.received) == 1)
    began = time.monotonic()
    content.executor.hand_over()  # what SIGTERM does in a worker process
    thread.join(timeout=10)
    assert not thread.is_alive() and time.monotonic() - began < 5
    row = run_row(content, run_id)
    assert row["status"] == "queued" and row["recoveries"] == 0
    assert "run.handed_over" in content.events(run_id)
    successor = Executor(
        content.database,
        content.kicker,
        lease_ttl=1.0,
        programs=content.services.programs,
        services=content.services,
    )
    for kick in list(content.kicker.pending):
        successor.advance(*kick)
    run = content.run(run_id)
    assert run.status == "completed" and run.recoveries == 0
    assert AgentState.model_validate(run.state).answer == "from the next worker"


def test_a_failed_run_retries_from_its_failed_step(
    api: TestClient, content: Harness, server: OpenAIServer
) -> None:
    def listing(call_id: str) -> Reply:
        from tests.agent.fakes.openai_server import function_call

        return completion_reply(tool_calls=[function_call(call_id, "list_collections", "{}")])

    server.reply(listing("one"), *[error_reply(500, "down", type="server_error")] * 4)
    key = keys(content)
    run_id = start(content, question="list", tools=["list_collections"])
    content.drive(until=30)
    assert content.run(run_id).status == "failed"
    paid = len(server.received)
    # The provider is back, and its circuit's cool-down has passed.
    server.replies.clear()
    with content.database.system_session() as session:
        session.execute(text("DELETE FROM agent_circuit"))
        session.commit()
    server.reply(completion_reply("Here they are."))
    retried = api.post(f"/v1/runs/{run_id}/retry", headers=key[UserRole.admin])
    assert retried.status_code == 202, retried.text
    content.drive()
    run = content.run(run_id)
    assert run.status == "completed" and run.error is None and run.error_code is None
    assert len(server.received) == paid + 1  # only the failed call again; the first was not repaid
    assert "run.retried" in content.events(run_id)
    assert AgentState.model_validate(run.state).answer == "Here they are."


def test_ask_human_gives_up_when_nobody_answers_in_time(content: Harness) -> None:
    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            return Message.assistant(
                tool_calls=[ToolCall(id="ask", name="ask_human", arguments={"question": "Which office?"})]
            )
        return Message.assistant(f"Going on: {results[0].content}")

    install(script)
    scripted(content)
    run_id = content.start(
        "agent.answer",
        AgentState(
            question="Book a desk", role=UserRole.reader, tools=["ask_human"], ask_human_due_seconds=0.5
        ),
    )
    content.drive()
    assert content.run(run_id).status == "waiting"
    run = content.drive_until(run_id, "completed")
    answer = AgentState.model_validate(run.state).answer
    assert answer is not None and "Nobody answered within" in answer
    with content.database.tenant_session(content.tenant_id) as session:
        status = session.execute(text("SELECT status FROM runtime_task WHERE run_id = :id"), {"id": run_id})
        assert status.scalar() == "cancelled"  # the question is off people's lists
