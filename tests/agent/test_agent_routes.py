"""The agent's HTTP API (issue 18): what a request can be refused for at once (an unknown route,
a malformed budget), idempotency keys bound to the request, and the list of the caller's runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.agent.config import ModelsConfig, Route, offline_config
from quire.core.models import Role
from tests.factories import Person, TenantFixture, make_person
from tests.harness import Harness
from tests.runtime.test_routes import Ticket  # registers the program test.ticket
from tests.services import use_models

assert Ticket


@pytest.fixture
def people(content: Harness) -> dict[str, Person]:
    tenant = TenantFixture(id=content.tenant_id, name="agent-routes")
    return {
        "ann": make_person(content.database, tenant, Role.reader, "ann"),
        "bob": make_person(content.database, tenant, Role.reader, "bob"),
        "root": make_person(content.database, tenant, Role.admin, "root"),
    }


@pytest.fixture
def offline_with_a_second_route(content: Harness) -> Iterator[None]:
    models = offline_config()
    routes = {**models.routes, "cheap": Route(name="cheap", targets=["offline"])}
    use_models(content.services, ModelsConfig(targets=models.targets, routes=routes), content.database)
    yield
    use_models(content.services, offline_config(), None)


def run_count(content: Harness) -> int:
    with content.database.tenant_session(content.tenant_id) as session:
        return int(session.execute(text("SELECT count(*) FROM runtime_run")).scalar_one())


# Refused at request time.


def test_an_unknown_route_is_a_422_naming_the_known_routes_and_starts_nothing(
    api: TestClient, content: Harness, people: dict[str, Person], offline_with_a_second_route: None
) -> None:
    headers = people["ann"].headers
    for path in ("/v1/agent/runs", "/v1/agent/ask"):
        refused = api.post(
            path, json={"question": "Holidays?", "route": "fastest", "timeout_seconds": 0}, headers=headers
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "unknown_route"
        assert "'fastest'" in error["message"] and "cheap, default" in error["message"], error
    assert run_count(content) == 0
    known = api.post("/v1/agent/runs", json={"question": "Holidays?", "route": "cheap"}, headers=headers)
    assert known.status_code == 202, known.text


@pytest.mark.parametrize(
    "budget",
    [
        '{"max_steps": -1}',
        '{"max_steps": 0}',
        '{"max_tokens": -100}',
        '{"max_seconds": -5}',
        '{"max_seconds": 0}',
        '{"max_cost_usd": -1.0}',
        '{"max_seconds": NaN}',
        '{"max_cost_usd": Infinity}',
        '{"max_steps": 2.5}',
    ],
)
def test_a_malformed_budget_is_a_422_and_starts_nothing(
    api: TestClient, content: Harness, people: dict[str, Person], budget: str
) -> None:
    name = next(iter(json.loads(budget)))
    for path in ("/v1/agent/runs", "/v1/agent/ask"):
        refused = api.post(
            path,
            content=f'{{"question": "Holidays?", "timeout_seconds": 0, "budget": {budget}}}',
            headers={**people["root"].headers, "content-type": "application/json"},
        )
        assert refused.status_code == 422, (path, budget, refused.text)
        assert name in str(refused.json()["error"]), refused.text
    assert run_count(content) == 0


# Idempotency keys.


def test_the_same_key_and_request_return_the_first_run_and_another_request_is_a_409(
    api: TestClient, content: Harness, people: dict[str, Person]
) -> None:
    ann = people["ann"].headers
    body = {"question": "How many holidays?", "idempotency_key": "ask-1"}
    first = api.post("/v1/agent/runs", json=body, headers=ann)
    assert first.status_code == 202 and first.json()["created"] is True, first.text
    again = api.post("/v1/agent/runs", json=body, headers=ann)
    assert again.status_code == 202 and again.json() == {**first.json(), "created": False}

    # /ask with the same key and request answers about the same run.
    asked = api.post("/v1/agent/ask", json={**body, "timeout_seconds": 0}, headers=ann)
    assert asked.json()["id"] == first.json()["id"] and asked.json()["created"] is False

    different = api.post("/v1/agent/runs", json={**body, "question": "How many laptops?"}, headers=ann)
    assert different.status_code == 409, different.text
    assert different.json()["error"]["code"] == "idempotency_mismatch"
    assert "ask-1" in different.json()["error"]["message"]
    with_budget = api.post("/v1/agent/runs", json={**body, "budget": {"max_steps": 3}}, headers=ann)
    assert with_budget.status_code == 409
    # Somebody else's key is not a way to somebody else's run.
    theirs = api.post("/v1/agent/runs", json=body, headers=people["bob"].headers)
    assert theirs.status_code == 409 and theirs.json()["error"]["code"] == "idempotency_mismatch"
    assert run_count(content) == 1

    # A new run reports itself created on /ask too.
    fresh = api.post(
        "/v1/agent/ask",
        json={"question": "Laptops?", "idempotency_key": "ask-2", "timeout_seconds": 0},
        headers=ann,
    )
    assert fresh.json()["created"] is True and run_count(content) == 2


def test_a_key_belongs_to_one_program(api: TestClient, content: Harness, people: dict[str, Person]) -> None:
    root = people["root"].headers
    agent = api.post("/v1/agent/runs", json={"question": "Holidays?", "idempotency_key": "k"}, headers=root)
    other = api.post(
        "/v1/runs", json={"program": "test.ticket", "state": {}, "idempotency_key": "k"}, headers=root
    )
    assert agent.status_code == 202 and other.status_code == 202, other.text
    assert other.json()["created"] is True and other.json()["id"] != agent.json()["id"]


# The list of the caller's runs.


def start(api: TestClient, person: Person, question: str) -> str:
    started = api.post("/v1/agent/runs", json={"question": question}, headers=person.headers)
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


def listed(api: TestClient, person: Person, **params: Any) -> dict[str, Any]:
    answer = api.get("/v1/agent/runs", params=params, headers=person.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def test_the_list_of_agent_runs_is_the_callers_newest_first_filtered_and_paged(
    api: TestClient, content: Harness, people: dict[str, Person]
) -> None:
    ann, bob, root = people["ann"], people["bob"], people["root"]
    q1, q2, q3 = (start(api, ann, f"Question {n}?") for n in (1, 2, 3))
    b1 = start(api, bob, "Bob's question?")
    content.drive()
    q4 = start(api, ann, "Question 4?")  # not driven: still queued
    ticket = api.post("/v1/runs", json={"program": "test.ticket", "state": {}}, headers=root.headers)
    assert ticket.status_code == 202

    mine = listed(api, ann)
    assert ids(mine) == [q4, q3, q2, q1] and mine["count"] == 4 and mine["next_cursor"] is None
    newest, oldest = mine["data"][0], mine["data"][-1]
    assert (
        newest["status"] == "queued"
        and newest["question"] == "Question 4?"
        and newest["answer_excerpt"] is None
    )
    assert oldest["status"] == "completed" and oldest["question"] == "Question 1?"
    assert oldest["answer_excerpt"] and len(oldest["answer_excerpt"]) <= 301
    assert {"created_at", "updated_at", "stop_reason", "error", "error_code", "uncited"} <= set(oldest)

    # Others' runs are not the caller's; an administrator sees every agent run (and no other program's).
    assert ids(listed(api, bob)) == [b1]
    assert set(ids(listed(api, root))) == {q1, q2, q3, q4, b1}

    assert ids(listed(api, ann, status="completed")) == [q3, q2, q1]
    assert listed(api, ann, status="completed")["count"] == 3
    created = {item["id"]: item["created_at"] for item in mine["data"]}
    assert ids(listed(api, ann, since=created[q2])) == [q4, q3, q2]  # since: at or after
    assert ids(listed(api, ann, until=created[q2])) == [q1]  # until: before
    assert ids(listed(api, ann, since=created[q2], until=created[q4])) == [q3, q2]

    first = listed(api, ann, limit=3)
    assert ids(first) == [q4, q3, q2] and first["count"] == 4 and first["next_cursor"]
    second = listed(api, ann, limit=3, cursor=first["next_cursor"])
    assert ids(second) == [q1] and second["next_cursor"] is None
    assert ids(
        listed(
            api,
            ann,
            limit=2,
            status="completed",
            cursor=listed(api, ann, limit=2, status="completed")["next_cursor"],
        )
    ) == [q1]

    bad = api.get("/v1/agent/runs", params={"cursor": "not-a-cursor"}, headers=ann.headers)
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]
    assert api.get("/v1/agent/runs", params={"limit": 0}, headers=ann.headers).status_code == 422
    assert uuid.UUID(q1)
