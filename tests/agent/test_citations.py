"""What an answer cites: its [n] markers checked against the sources the run retrieved (issue 18,
finding 6): unknown numbers are reported, never replaced by every source, and an answer that
cites nothing is marked uncited."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import text

from quire.agent.citations import NumberedCitation, SourceCitation, check_citations
from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.messages import CompletionRequest, Message, Role, ToolCall
from quire.agent.state import AgentState
from quire.agent.tools.base import ToolContext, ToolOutput, tool
from quire.core.models import Role as UserRole
from tests.agent.scripted import install
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models


def source(ref: int) -> NumberedCitation:
    return NumberedCitation(
        ref=ref, kind="content", title=f"Doc {ref}", quote=f"quote {ref}", chunk_id=uuid.uuid4()
    )


SOURCES = [source(1), source(2), source(3)]


def test_markers_that_match_sources_are_the_citations() -> None:
    checked = check_citations("Holidays are 27 days [2], laptops last three years [3][2].", SOURCES)
    assert [c.ref for c in checked.citations] == [2, 3]
    assert checked.unresolved == [] and checked.uncited is False


def test_a_marker_list_in_one_bracket_counts_each_number() -> None:
    checked = check_citations("Both hold [1, 3].", SOURCES)
    assert [c.ref for c in checked.citations] == [1, 3] and not checked.uncited


def test_unknown_markers_are_reported_and_never_replaced_by_every_source() -> None:
    checked = check_citations("It is 27 days [7], maybe [9] or [7].", SOURCES)
    assert checked.citations == []
    assert checked.unresolved == [7, 9]
    assert checked.uncited is True


def test_known_and_unknown_markers_together() -> None:
    checked = check_citations("27 days [1], the rest [4].", SOURCES)
    assert [c.ref for c in checked.citations] == [1]
    assert checked.unresolved == [4] and checked.uncited is False


def test_an_answer_without_markers_is_uncited_not_given_every_source() -> None:
    checked = check_citations("I could not find this in the documents.", SOURCES)
    assert checked.citations == [] and checked.unresolved == [] and checked.uncited is True


def test_no_answer_cites_nothing_and_is_not_called_uncited() -> None:
    checked = check_citations(None, SOURCES)
    assert checked.citations == [] and checked.unresolved == [] and checked.uncited is False


def test_markers_without_any_source_are_unresolved() -> None:
    checked = check_citations("See [1].", [])
    assert checked.citations == [] and checked.unresolved == [1] and checked.uncited is True


# The same through a run: its state, the API and the answer event.


class Nothing(BaseModel):
    pass


@tool(summary="Returns three passages with their sources.", tags=("test",))
def three_passages(ctx: ToolContext, args: Nothing) -> ToolOutput:
    citations = [
        SourceCitation(kind="content", title=f"Doc {n}", quote=f"passage {n}", chunk_id=uuid.uuid4())
        for n in (1, 2, 3)
    ]
    return ToolOutput(content="three passages", citations=citations)


@pytest.fixture
def with_passages(content: Harness) -> Iterator[None]:
    tools = content.services.agent.tools
    tools[three_passages.name] = three_passages
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    yield
    content.services.agent.tools.pop(three_passages.name, None)


def answering(final: str) -> None:
    def script(request: CompletionRequest) -> Message:
        if not any(m.role == Role.tool for m in request.messages):
            return Message.assistant(tool_calls=[ToolCall(id="c1", name="three_passages", arguments={})])
        return Message.assistant(final)

    install(script)


def answer_event(content: Harness, run_id: uuid.UUID) -> dict[str, object]:
    with content.database.tenant_session(content.tenant_id) as session:
        data: dict[str, object] = session.execute(
            text("SELECT data FROM runtime_event WHERE run_id = :id AND type = 'answer'"), {"id": run_id}
        ).scalar_one()
    return data


def test_a_run_whose_answer_cites_unknown_numbers_reports_them(
    content: Harness, api: TestClient, with_passages: None
) -> None:
    admin = auth(make_key(content.database, TenantFixture(id=content.tenant_id, name="c"), UserRole.admin))
    answering("Holidays are 27 days [7], and [2].")
    run_id = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["three_passages"])
    )
    content.drive()
    run = api.get(f"/v1/agent/runs/{run_id}", headers=admin).json()
    assert run["status"] == "completed", run
    assert [c["n"] for c in run["citations"]] == [2]
    assert run["unresolved_citations"] == [7] and run["uncited"] is False
    event = answer_event(content, run_id)
    assert event["citations"] == run["citations"]
    assert event["unresolved_citations"] == [7] and event["uncited"] is False

    answering("I could not find this.")
    run_id = content.start(
        "agent.answer", AgentState(question="q", role=UserRole.admin, tools=["three_passages"])
    )
    content.drive()
    run = api.get(f"/v1/agent/runs/{run_id}", headers=admin).json()
    assert run["answer"] == "I could not find this."
    assert run["citations"] == [] and run["unresolved_citations"] == [] and run["uncited"] is True
    event = answer_event(content, run_id)
    assert event["citations"] == [] and event["uncited"] is True
    state = AgentState.model_validate(content.run(run_id).state)
    assert state.uncited is True and state.unresolved_citations == []


# A memory is cited by what it says (issue 20): never by its slot key.


@pytest.fixture
def scripted(content: Harness) -> None:
    use_models(
        content.services,
        ModelsConfig(
            targets={"s": ModelTarget(name="s", provider="scripted", model="m")},
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )


def test_a_memory_citation_is_titled_by_its_statement(
    content: Harness, api: TestClient, scripted: None
) -> None:
    from tests.memory.test_lifecycle import POLICY, by_text, ingest, keys, memories

    key = keys(content)
    ingest(api, content, key[UserRole.contributor], POLICY)
    portal = by_text(memories(api, key[UserRole.reviewer], state="in_review"), "travel portal")
    approved = api.post(
        f"/v1/memories/{portal['id']}/review", json={"decision": "approve"}, headers=key[UserRole.reviewer]
    )
    assert approved.status_code == 202, approved.text
    content.drive()

    def script(request: CompletionRequest) -> Message:
        if not any(m.role == Role.tool for m in request.messages):
            call = ToolCall(id="r1", name="recall_memory", arguments={"query": "how to book flights"})
            return Message.assistant(tool_calls=[call])
        return Message.assistant("Book them through the travel portal [1].")

    install(script)
    run_id = content.start(
        "agent.answer",
        AgentState(question="How do I book flights?", role=UserRole.admin, tools=["recall_memory"]),
    )
    content.drive()
    run = api.get(f"/v1/agent/runs/{run_id}", headers=key[UserRole.admin]).json()
    assert run["status"] == "completed", run
    [cited] = run["citations"]
    assert cited["kind"] == "memory"
    assert cited["title"] == "Employees must book flights through the travel portal."
    assert cited["title"] != portal["subject_key"]


# Citations are objects (issue 21): the answer event, the run and /ask carry what each source
# is, exactly, under one numbering per answer; the numbers the model reads are the same.

NUMBER = re.compile(r"\[(\d+)\] (.*)")


def numbered_lines(message: Message) -> dict[str, int]:
    """The first line of each source a tool message lists, by the number the model reads."""
    return {match.group(2): int(match.group(1)) for match in NUMBER.finditer(message.content)}


def sse_answer(api: TestClient, run_id: uuid.UUID, key: dict[str, str]) -> dict[str, Any]:
    from tests.runtime.test_routes import read_sse

    [answer] = [
        e for e in read_sse(api, f"/v1/agent/runs/{run_id}/events", key) if e.get("event") == "answer"
    ]
    data: dict[str, Any] = json.loads(answer["data"])["data"]
    return data


def test_the_answer_event_cites_documents_and_memories_as_objects_under_one_numbering(
    content: Harness, api: TestClient, scripted: None
) -> None:
    from tests.memory.test_lifecycle import POLICY, by_text, ingest, keys, memories

    key = keys(content)
    created = ingest(api, content, key[UserRole.contributor], POLICY)
    portal = by_text(memories(api, key[UserRole.reviewer], state="in_review"), "travel portal")
    approved = api.post(
        f"/v1/memories/{portal['id']}/review", json={"decision": "approve"}, headers=key[UserRole.reviewer]
    )
    assert approved.status_code == 202, approved.text
    content.drive()
    seen: dict[str, int] = {}

    def script(request: CompletionRequest) -> Message:
        results = [m for m in request.messages if m.role == Role.tool]
        if not results:
            call = ToolCall(id="s1", name="search_content", arguments={"query": "laptops replaced", "k": 2})
            return Message.assistant(tool_calls=[call])
        if len(results) == 1:
            seen.update(numbered_lines(results[0]))
            call = ToolCall(id="r1", name="recall_memory", arguments={"query": "how to book flights"})
            return Message.assistant(tool_calls=[call])
        memory_lines = numbered_lines(results[1])
        seen.update(memory_lines)
        laptops = next(n for line, n in seen.items() if "Hardware" in line)
        portal_n = next(n for line, n in memory_lines.items() if "travel portal" in line)
        return Message.assistant(
            f"Laptops last three years [{laptops}]; flights go through the portal [{portal_n}]."
        )

    install(script)
    admin = key[UserRole.admin]
    asking = {"question": "Laptops and flights?", "idempotency_key": "cited-objects"}
    started = api.post("/v1/agent/runs", json=asking, headers=admin)
    assert started.status_code == 202, started.text
    run_id = uuid.UUID(started.json()["id"])
    content.drive()
    run = api.get(f"/v1/agent/runs/{run_id}", headers=admin).json()
    assert run["status"] == "completed", run

    # One sequence: the memory's number follows the passages', as the model read them.
    assert sorted(seen.values()) == list(range(1, len(seen) + 1)) and len(seen) >= 2
    event = sse_answer(api, run_id, admin)
    document, memory = event["citations"]
    assert document["kind"] == "document" and memory["kind"] == "memory"
    assert memory["n"] > document["n"] and memory["n"] == len(seen)
    assert seen[next(line for line in seen if "travel portal" in line)] == memory["n"]

    # The document citation names a version and an element that hold the quoted passage.
    assert document["document_id"] == created["document_id"] and document["version"] == 1
    assert document["title"] == "Expenses policy"
    elements = api.get(
        f"/v1/documents/{document['document_id']}/versions/{document['version']}/elements", headers=admin
    ).json()["data"]
    by_id = {e["id"]: e for e in elements}
    assert document["element_id"] == document["element_ids"][0] and set(document["element_ids"]) <= set(by_id)
    covered = [by_id[i]["text"] for i in document["element_ids"]]
    assert document["quote"].startswith(covered[0]) and "Laptops are replaced every three years." in covered
    assert document["section"] == ["Expenses policy", "Hardware"]
    assert document["page"] == by_id[document["element_id"]]["page"]

    # The memory citation names the approved memory and the version the answer used.
    item = api.get(f"/v1/memories/{memory['memory_id']}", headers=admin).json()
    assert memory["memory_version_id"] == item["approved_version_id"]
    assert memory["quote"] == memory["title"] == "Employees must book flights through the travel portal."
    assert memory["document_id"] is None and memory["element_id"] is None

    # The run and its stored state carry the same objects; no tool result numbers its sources
    # differently from the answer.
    assert run["citations"] == event["citations"]
    asked = api.post("/v1/agent/ask", json={**asking, "timeout_seconds": 0}, headers=admin)
    assert asked.status_code == 200 and asked.json()["citations"] == event["citations"]
    state = AgentState.model_validate(content.run(run_id).state)
    assert [c.model_dump(mode="json") for c in state.citations] == event["citations"]
    recalled = next(s for s in run["steps"] if s["name"].endswith(":recall_memory"))
    assert "[1]" not in recalled["result"]["content"]
