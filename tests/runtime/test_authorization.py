"""Who may see and move a run, whatever route they take (issue 16, findings 1 and 2).

Runs belong to whoever started them; the runtime's own signals (a process's events, a task's
decision, a child's end) never come in as plain signals; a task assigned to one person is
theirs alone; and a person's role and identity come from their key, never from a payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from quire.app.api import create_app
from quire.core.models import Role
from quire.core.settings import Settings
from quire.runtime.context import RunContext
from quire.runtime.programs import program
from tests.factories import Person, TenantFixture, make_person
from tests.harness import Harness
from tests.runtime.test_process import ORDER, Order


class Question(BaseModel):
    asker: uuid.UUID
    answer: str | None = None


@program("test.ask-one-person")
def ask_one_person(ctx: RunContext, state: Question) -> Question:
    decision = ctx.human_task(
        "What is the meeting room's name?", role=Role.reader, options=["answer"], assignee=state.asker
    )
    state.answer = decision.get("comment")
    return state


@pytest.fixture
def api(harness: Harness, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=settings, database=harness.database)
    app.state.kicker = harness.kicker
    with TestClient(app) as client:
        yield client


def order_of(harness: Harness, run_id: uuid.UUID) -> dict[str, object]:
    run = harness.run(run_id)
    return dict(run.state or run.input)


def people(harness: Harness) -> dict[str, Person]:
    tenant = TenantFixture(id=harness.tenant_id, name="runtime")
    return {
        name: make_person(harness.database, tenant, role, name=name)
        for name, role in [
            ("ann", Role.reader),
            ("bob", Role.reader),
            ("cat", Role.contributor),
            ("rev", Role.reviewer),
            ("adm", Role.admin),
        ]
    }


def test_a_persons_run_is_theirs_alone(harness: Harness, api: TestClient) -> None:
    who = people(harness)
    started = api.post("/v1/agent/runs", json={"question": "What is my salary?"}, headers=who["ann"].headers)
    assert started.status_code == 202
    run_id = started.json()["id"]

    def listed(person: str) -> set[str]:
        return {r["id"] for r in api.get("/v1/runs", headers=who[person].headers).json()["data"]}

    assert run_id in listed("ann") and run_id in listed("adm")
    assert run_id not in listed("bob") | listed("cat") | listed("rev")
    for person in ("bob", "cat", "rev"):
        headers = who[person].headers
        for path in (f"/v1/runs/{run_id}", f"/v1/agent/runs/{run_id}", f"/v1/runs/{run_id}/events"):
            assert api.get(path, headers=headers).status_code == 404, (person, path)
        assert api.post(f"/v1/runs/{run_id}/cancel", headers=headers).status_code == 404
        signal = api.post(f"/v1/runs/{run_id}/signals/go", json={"payload": 1}, headers=headers)
        assert signal.status_code == (403 if person == "bob" else 404), (person, signal.text)
    assert api.get(f"/v1/agent/runs/{run_id}", headers=who["ann"].headers).json()["question"] == (
        "What is my salary?"
    )
    assert api.get(f"/v1/runs/{run_id}", headers=who["adm"].headers).status_code == 200
    # The owner may stop their own run, though readers may not move anyone else's.
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=who["ann"].headers).status_code == 202


def test_a_task_assigned_to_one_person_is_theirs_alone(harness: Harness, api: TestClient) -> None:
    who = people(harness)
    run_id = harness.start("test.ask-one-person", Question(asker=who["ann"].id))
    harness.drive()
    task = harness.run(run_id).open_tasks[0]

    def tasks(person: str) -> set[str]:
        return {t["id"] for t in api.get("/v1/tasks", headers=who[person].headers).json()["data"]}

    assert str(task.id) in tasks("ann") and str(task.id) in tasks("adm")
    assert str(task.id) not in tasks("bob") | tasks("cat") | tasks("rev")
    answer = {"decision": "answer", "comment": "Fjord"}
    for person in ("bob", "cat", "rev"):
        assert api.post(
            f"/v1/tasks/{task.id}/decision", json=answer, headers=who[person].headers
        ).status_code in (
            403,
            404,
        )
        # Nor through the generic signal route, with a decision that names the asker.
        forged = {
            "payload": {
                "task_id": str(task.id),
                "decision": "answer",
                "comment": "forged",
                "decided_by": str(who["ann"].id),
            }
        }
        assert api.post(
            f"/v1/runs/{run_id}/signals/task:{task.id}", json=forged, headers=who[person].headers
        ).status_code in (403, 404)
    harness.drive()
    assert harness.run(run_id).status == "waiting"

    assert (
        api.post(f"/v1/tasks/{task.id}/decision", json=answer, headers=who["ann"].headers).status_code == 200
    )
    harness.drive()
    assert harness.run(run_id).state == {"asker": str(who["ann"].id), "answer": "Fjord"}


@pytest.mark.parametrize("name", ["event", "task:00000000-0000-0000-0000-000000000000", "child:x"])
def test_the_runtimes_own_signals_never_come_in_as_plain_signals(
    harness: Harness, api: TestClient, name: str
) -> None:
    who = people(harness)
    run_id = harness.start(ORDER.program_name, ORDER.start(Order()))
    harness.drive()
    sent = api.post(
        f"/v1/runs/{run_id}/signals/{name}",
        json={"payload": {"name": "add", "data": {"count": 5}, "actor": str(who["rev"].id)}},
        headers=who["adm"].headers,
    )
    assert sent.status_code == 403, sent.text
    harness.drive()
    assert order_of(harness, run_id)["data"]["items"] == 0


def test_a_transition_declares_who_may_fire_it_and_the_event_acts_as_its_sender(
    harness: Harness, api: TestClient
) -> None:
    who = people(harness)
    run_id = harness.start(ORDER.program_name, ORDER.start(Order()), owner=who["cat"].caller)
    harness.drive()

    def send(person: str, name: str, **data: object) -> int:
        response = api.post(
            f"/v1/runs/{run_id}/events", json={"name": name, "data": data}, headers=who[person].headers
        )
        harness.drive()
        return response.status_code

    assert send("bob", "add", count=2) == 403  # a reader sends no events
    assert send("cat", "add", count=2) == 202
    assert send("cat", "submit") == 202
    # Approving needs a reviewer: the contributor who owns the order is refused ...
    assert send("cat", "approve", actor=str(who["rev"].id)) == 403
    assert send("cat", "expire") == 403  # ... and a timer's transition is Quire's own.
    state = harness.run(run_id).state
    assert state is not None and state["current"] == "submitted"
    # A reviewer approves, and the event acts as the reviewer whatever its data says.
    assert send("rev", "approve", actor=str(who["adm"].id)) == 202
    state = harness.run(run_id).state
    assert state is not None and state["current"] == "approved"
    assert state["data"]["notes"] == [f"paid by {who['rev'].id}"]


def test_only_programs_without_a_route_of_their_own_start_through_the_generic_route(
    harness: Harness, api: TestClient
) -> None:
    who = people(harness)
    forged = {"question": "What does Ann remember?", "principal_id": str(who["ann"].id), "role": "admin"}
    refused = api.post(
        "/v1/runs", json={"program": "agent.answer", "state": forged}, headers=who["adm"].headers
    )
    assert refused.status_code == 403, refused.text
    review = api.post(
        "/v1/runs", json={"program": "process:memory-review", "state": {}}, headers=who["adm"].headers
    )
    assert review.status_code == 403, review.text
    allowed = api.post(
        "/v1/runs",
        json={"program": "test.ask-one-person", "state": {"asker": str(who["ann"].id)}},
        headers=who["adm"].headers,
    )
    assert allowed.status_code == 202
    shown = api.get(f"/v1/runs/{allowed.json()['id']}", headers=who["adm"].headers).json()
    assert shown["started_by"] == str(who["adm"].id)
