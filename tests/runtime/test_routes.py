"""The runtime's HTTP API, on committed runs driven in the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from quire.app.api import create_app
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import Caller
from quire.runtime.context import RunContext
from quire.runtime.programs import program
from tests.factories import TenantFixture, auth, make_key, make_person, open_database
from tests.harness import Harness
from tests.runtime.test_process import ORDER, Order


class Ticket(BaseModel):
    answer: str | None = None


@program("test.ticket")
def ticket(ctx: RunContext, state: Ticket) -> Ticket:
    ctx.step("open", lambda: "opened")
    ctx.emit("ticket.progress", {"percent": 50})
    decision = ctx.human_task("Close the ticket?", role=Role.reviewer, options=["close", "keep"])
    got = ctx.wait_for_signal("answer")
    state.answer = f"{decision['decision']}:{got}"
    return state


@pytest.fixture
def api(harness: Harness, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=settings, database=harness.database)
    app.state.kicker = harness.kicker
    with TestClient(app) as client:
        yield client


def keys(harness: Harness) -> dict[Role, dict[str, str]]:
    tenant = TenantFixture(id=harness.tenant_id, name="runtime")
    return {role: auth(make_key(harness.database, tenant, role)) for role in Role}


def owned_keys(harness: Harness) -> tuple[dict[Role, dict[str, str]], Caller]:
    """A key per role, and the contributor's identity: the runs of these tests are theirs."""
    tenant = TenantFixture(id=harness.tenant_id, name="runtime")
    people = {role: make_person(harness.database, tenant, role) for role in Role}
    return {role: person.headers for role, person in people.items()}, people[Role.contributor].caller


def test_a_run_through_the_api(harness: Harness, api: TestClient) -> None:
    key, owner = owned_keys(harness)
    run_id = harness.start("test.ticket", Ticket(), owner=owner)
    harness.drive()

    assert api.get(f"/v1/runs/{run_id}", headers=key[Role.reader]).status_code == 404  # not hers
    shown = api.get(f"/v1/runs/{run_id}", headers=key[Role.contributor]).json()
    assert shown["status"] == "waiting"
    assert [s["name"] for s in shown["steps"]] == ["open", "task:Close the ticket?"]
    assert shown["waiting_for"]["kind"] == "signal"
    task = shown["open_tasks"][0]

    assert api.get("/v1/tasks", headers=key[Role.contributor]).json()["count"] == 0
    listed = api.get("/v1/tasks", headers=key[Role.reviewer]).json()
    assert [t["id"] for t in listed["data"]] == [task["id"]]

    refused = api.post(
        f"/v1/tasks/{task['id']}/decision", json={"decision": "close"}, headers=key[Role.reader]
    )
    assert refused.status_code == 404  # a reviewer's task is not the reader's to see
    bad = api.post(f"/v1/tasks/{task['id']}/decision", json={"decision": "maybe"}, headers=key[Role.reviewer])
    assert bad.status_code == 409 and "not one of close, keep" in bad.json()["error"]["message"]
    decided = api.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"decision": "close", "comment": "done"},
        headers=key[Role.reviewer],
    )
    assert decided.status_code == 200 and decided.json()["status"] == "decided"
    again = api.post(
        f"/v1/tasks/{task['id']}/decision", json={"decision": "keep"}, headers=key[Role.reviewer]
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_already_decided"
    harness.drive()

    first = api.post(
        f"/v1/runs/{run_id}/signals/answer",
        json={"payload": "42"},
        headers={**key[Role.contributor], "Idempotency-Key": "once"},
    )
    second = api.post(
        f"/v1/runs/{run_id}/signals/answer",
        json={"payload": "43"},
        headers={**key[Role.contributor], "Idempotency-Key": "once"},
    )
    assert (first.json(), second.json()) == ({"delivered": True}, {"delivered": False})
    assert api.post(f"/v1/runs/{run_id}/signals/answer", json={}, headers=key[Role.reader]).status_code == 403
    harness.drive()
    done = api.get(f"/v1/runs/{run_id}", headers=key[Role.admin]).json()
    assert (done["status"], done["state"]) == ("completed", {"answer": "close:42"})
    late = api.post(f"/v1/runs/{run_id}/signals/answer", json={}, headers=key[Role.contributor])
    assert late.status_code == 409 and late.json()["error"]["code"] == "run_finished"

    listing = api.get("/v1/runs?status=completed&program=test.ticket", headers=key[Role.contributor]).json()
    assert str(run_id) in {r["id"] for r in listing["data"]}
    others = api.get("/v1/runs?status=completed&program=test.ticket", headers=key[Role.reviewer]).json()
    assert str(run_id) not in {r["id"] for r in others["data"]}


def read_sse(api: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, str]]:
    events, current = [], {}
    with api.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                    if current.get("event") == "end":
                        break
                current = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            current[field] = value
    return events


def test_events_stream_live_and_resume_from_last_event_id(harness: Harness, api: TestClient) -> None:
    key, owner = owned_keys(harness)
    run_id = harness.start("test.ticket", Ticket(), owner=owner)
    harness.drive()

    def finish_later() -> None:
        time.sleep(1.0)
        task_id = harness.run(run_id).open_tasks[0].id
        api.post(f"/v1/tasks/{task_id}/decision", json={"decision": "keep"}, headers=key[Role.reviewer])
        harness.signal(run_id, "answer", "later")
        harness.drive()

    helper = threading.Thread(target=finish_later)
    helper.start()
    events = read_sse(api, f"/v1/runs/{run_id}/events", key[Role.contributor])
    helper.join()
    types = [e["event"] for e in events]
    assert types[0] == "run.created" and types[-1] == "end"
    assert {
        "ticket.progress",
        "task.created",
        "task.decided",
        "run.waiting",
        "run.completed",
    } <= set(types)
    assert types.count("ticket.progress") == 1  # emitted once, though the program replayed

    ids = [int(e["id"]) for e in events if "id" in e]
    assert ids == sorted(ids)
    resumed = read_sse(
        api, f"/v1/runs/{run_id}/events", {**key[Role.contributor], "Last-Event-ID": str(ids[2])}
    )
    assert [int(e["id"]) for e in resumed if "id" in e] == ids[3:]


def test_process_events_through_the_api(harness: Harness, api: TestClient) -> None:
    key, owner = owned_keys(harness)
    run_id = harness.start(ORDER.program_name, ORDER.start(Order()), owner=owner)
    harness.drive()
    refused = api.post(f"/v1/runs/{run_id}/events", json={"name": "submit"}, headers=key[Role.contributor])
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "invalid_event",
        "message": "'submit' refused in state 'draft': an empty order cannot be submitted",
    }
    assert "process.refused" in harness.events(run_id)
    accepted = api.post(
        f"/v1/runs/{run_id}/events",
        json={"name": "add", "data": {"count": 1}},
        headers=key[Role.contributor],
    )
    assert accepted.status_code == 202
    harness.drive()
    assert harness.run(run_id).state["data"]["items"] == 1  # type: ignore[index]


def test_cancel_through_the_api(harness: Harness, api: TestClient) -> None:
    key, owner = owned_keys(harness)
    run_id = harness.start("test.ticket", Ticket(), owner=owner)
    harness.drive()
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=key[Role.reviewer]).status_code == 404
    response = api.post(
        f"/v1/runs/{run_id}/cancel",
        json={"reason": "no longer needed"},
        headers=key[Role.contributor],
    )
    assert response.status_code == 202
    harness.drive()
    shown = api.get(f"/v1/runs/{run_id}", headers=key[Role.contributor]).json()
    assert shown["status"] == "cancelled" and shown["open_tasks"] == []
    again = api.post(f"/v1/runs/{run_id}/cancel", headers=key[Role.contributor])
    assert again.status_code == 409


@program("test.ticket-copy")
def ticket_copy(ctx: RunContext, state: Ticket) -> Ticket:
    return state


def test_an_idempotency_key_is_bound_to_its_program_and_its_state(harness: Harness, api: TestClient) -> None:
    """Issue 18, finding 9: the same key and state return the run; another state is a 409; another
    program's run may use the same key."""
    admin = keys(harness)[Role.admin]
    body = {"program": "test.ticket", "state": {}, "idempotency_key": "nightly-1"}
    first = api.post("/v1/runs", json=body, headers=admin)
    assert first.status_code == 202 and first.json()["created"] is True
    again = api.post("/v1/runs", json={**body, "state": {"answer": None}}, headers=admin)  # the same state
    assert again.status_code == 202 and again.json() == {"id": first.json()["id"], "created": False}

    other = api.post("/v1/runs", json={**body, "state": {"answer": "done"}}, headers=admin)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_mismatch"
    assert "nightly-1" in other.json()["error"]["message"]

    copy = api.post("/v1/runs", json={**body, "program": "test.ticket-copy"}, headers=admin)
    assert copy.status_code == 202 and copy.json()["created"] is True
    assert copy.json()["id"] != first.json()["id"]


def test_runs_of_another_tenant_are_invisible(
    harness: Harness, api: TestClient, database_url: str, tenants: dict[str, TenantFixture]
) -> None:
    run_id = harness.start("test.ticket", Ticket())

    other = open_database(database_url.replace("quire_test", "quire_runtime_test"), pool_size=1)
    from quire.core.models import Tenant

    with other.system_session() as session:
        stranger = Tenant(name=f"stranger-{run_id.hex[:6]}")
        session.add(stranger)
        session.commit()
    stranger_key = auth(make_key(harness.database, TenantFixture(stranger.id, stranger.name), Role.admin))
    other.dispose()
    assert api.get(f"/v1/runs/{run_id}", headers=stranger_key).status_code == 404
    assert api.post(f"/v1/runs/{run_id}/cancel", headers=stranger_key).status_code == 404
    assert api.get("/v1/runs", headers=stranger_key).json()["count"] == 0
