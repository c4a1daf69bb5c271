"""Runs for the console's tests: an agent run with a bit of everything the run inspector shows,
made through the API, and a program that is retried once and then fails.

A scripted model on two priced targets: the first turn falls back from a rate-limited target, the
second is throttled on both and parks until the Retry-After passes, then asks a person; the
person answers, and the last turn answers with a citation. The question carries markup, so the
pages must escape it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pydantic import BaseModel

from quire.agent.config import ModelsConfig, ModelTarget, Route, offline_config
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.providers.errors import RateLimited
from quire.core.models import Role as UserRole
from quire.runtime.context import RunContext
from quire.runtime.errors import NonRetryable
from quire.runtime.programs import program
from tests.agent.scripted import install
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

QUESTION = 'How many days of paid holiday do employees get? <script>alert("question")</script>'
SEARCH = {"query": "paid holiday days per year", "k": 3}
ASKED = "Which office are you in? <b>bold</b>"
ANSWER = "Every employee gets 27 days of paid holiday a year [1]."
THROTTLE_SECONDS = 0.4
FLAKY_ERROR = "the ledger refused <script>alert('error')</script>"


@dataclass(frozen=True)
class AgentRunMade:
    run_id: str
    keys: dict[UserRole, str]


def script(request: CompletionRequest, throttled: dict[str, bool]) -> Message:
    turn = sum(1 for m in request.messages if m.role == Role.assistant)
    if turn == 0 and request.model == "m-primary":
        raise RateLimited("primary is over its rate limit", retry_after=7.0)
    if turn == 1 and not throttled.get(request.model):
        throttled[request.model] = True
        raise RateLimited(f"{request.model} is over its rate limit", retry_after=THROTTLE_SECONDS)
    if turn == 0:
        return Message.assistant(
            "Let me look that up.",
            tool_calls=[
                ToolCall(id="call_search", name="search_content", arguments=SEARCH),
                ToolCall(id="call_collections", name="list_collections", arguments={}),
            ],
        )
    if turn == 1:
        return Message.assistant(
            tool_calls=[ToolCall(id="call_ask", name="ask_human", arguments={"question": ASKED})]
        )
    return Message.assistant(ANSWER)


@contextmanager
def scripted_models(harness: Harness) -> Iterator[None]:
    throttled: dict[str, bool] = {}
    install(lambda request: script(request, throttled))
    prices: dict[str, Any] = {"price_input": 1000.0, "price_output": 2000.0}
    use_models(
        harness.services,
        ModelsConfig(
            targets={
                "primary": ModelTarget(name="primary", provider="scripted", model="m-primary", **prices),
                "backup": ModelTarget(name="backup", provider="scripted", model="m-backup", **prices),
            },
            routes={"default": Route(name="default", targets=["primary", "backup"])},
        ),
        # No shared breaker: the primary's Retry-After would keep every later turn off it, and
        # the inspector is to show a turn on each target.
        None,
    )
    try:
        yield
    finally:
        use_models(harness.services, offline_config(), None)


def make_agent_run(client: httpx.Client | TestClient, harness: Harness) -> AgentRunMade:
    """Upload the handbook, ask the question, answer the person's question; the run completes."""
    tenant = TenantFixture(id=harness.tenant_id, name="runs")
    keys = {role: make_key(harness.database, tenant, role, name=f"{role.value}-ann") for role in UserRole}
    uploaded = client.post(
        "/v1/documents",
        files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
        headers=auth(keys[UserRole.contributor]),
    )
    assert uploaded.status_code == 202, uploaded.text
    harness.drive()
    started = client.post("/v1/agent/runs", json={"question": QUESTION}, headers=auth(keys[UserRole.reader]))
    assert started.status_code == 202, started.text
    run_id = uuid.UUID(started.json()["id"])
    harness.drive()
    assert harness.run(run_id).status == "throttled"
    harness.drive_until(run_id, "waiting")
    task = client.get("/v1/tasks", headers=auth(keys[UserRole.reader])).json()["data"][0]
    decided = client.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"decision": "answer", "comment": "Oslo <i>office</i>"},
        headers=auth(keys[UserRole.reader]),
    )
    assert decided.status_code == 200, decided.text
    harness.drive()
    assert harness.run(run_id).status == "completed"
    return AgentRunMade(run_id=str(run_id), keys=keys)


class FlakyState(BaseModel):
    ledger: str = "main"


@program("test.console-flaky")
def flaky(ctx: RunContext, state: FlakyState) -> FlakyState:
    """Fails once (and is retried), then fails for good: a run with a retry and a failure."""

    def post() -> None:
        if ctx.run.attempt == 0:
            raise RuntimeError("the ledger timed out")
        raise NonRetryable(FLAKY_ERROR)

    ctx.step("post-to-ledger", post)
    return state
