"""Run budgets within each role's maximum, and the default daily budget of a tenant that set none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from quire.agent.budgets import BudgetPolicy
from quire.app.api import create_app
from quire.content.environment import ContentEnvironment
from quire.core.models import Role
from quire.core.settings import Settings
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models

NULL_BUDGET = {"max_tokens": None, "max_cost_usd": None, "max_steps": None, "max_seconds": None}
READER_MAXIMUM = {"max_tokens": 200_000, "max_cost_usd": 1.0, "max_steps": 24, "max_seconds": 600.0}
ADMIN_MAXIMUM = {"max_tokens": 2_000_000, "max_cost_usd": 10.0, "max_steps": 100, "max_seconds": 3600.0}


@pytest.fixture
def budgeted(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    """The API with the default budget settings, on committed runs driven in the test process."""
    app = create_app(settings=settings, database=content.database, services=content.services)
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


def keys(content: Harness) -> dict[Role, dict[str, str]]:
    tenant = TenantFixture(id=content.tenant_id, name="budgets")
    return {role: auth(make_key(content.database, tenant, role)) for role in Role}


def budget_of(content: Harness, run_id: str) -> dict[str, Any]:
    with content.database.tenant_session(content.tenant_id) as session:
        state = session.execute(
            text("SELECT input FROM runtime_run WHERE id = :id"), {"id": run_id}
        ).scalar_one()
    budget: dict[str, Any] = state["budget"]
    return budget


def run_count(content: Harness) -> int:
    with content.database.tenant_session(content.tenant_id) as session:
        return int(session.execute(text("SELECT count(*) FROM runtime_run")).scalar_one())


def test_a_readers_null_limits_become_the_reader_maximum(budgeted: TestClient, content: Harness) -> None:
    key = keys(content)
    started = budgeted.post(
        "/v1/agent/runs",
        json={"question": "What is the answer?", "budget": NULL_BUDGET},
        headers=key[Role.reader],
    )
    assert started.status_code == 202, started.text
    assert budget_of(content, started.json()["id"]) == READER_MAXIMUM
    # Limits left out keep their defaults (within the maximum); one given is kept as given.
    partial = budgeted.post(
        "/v1/agent/runs",
        json={"question": "What is the answer?", "budget": {"max_steps": 5, "max_cost_usd": None}},
        headers=key[Role.reader],
    )
    assert budget_of(content, partial.json()["id"]) == {**READER_MAXIMUM, "max_steps": 5}


def test_a_limit_over_the_roles_maximum_is_refused_with_the_limit_and_the_maximum(
    budgeted: TestClient, content: Harness
) -> None:
    key = keys(content)
    before = run_count(content)
    refused = budgeted.post(
        "/v1/agent/runs",
        json={"question": "What is the answer?", "budget": {"max_cost_usd": 5.0}},
        headers=key[Role.reader],
    )
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "max_cost_usd" in message and "1.0" in message and "reader" in message, message
    assert run_count(content) == before
    # An admin's maximum is higher.
    allowed = budgeted.post(
        "/v1/agent/runs",
        json={"question": "What is the answer?", "budget": {"max_cost_usd": 5.0}},
        headers=key[Role.admin],
    )
    assert allowed.status_code == 202 and budget_of(content, allowed.json()["id"])["max_cost_usd"] == 5.0


def test_an_admins_agent_run_is_held_to_the_admins_maximum(budgeted: TestClient, content: Harness) -> None:
    key = keys(content)
    body = {"question": "What is the answer?", "budget": NULL_BUDGET}
    started = budgeted.post("/v1/agent/runs", json=body, headers=key[Role.admin])
    assert started.status_code == 202, started.text
    assert budget_of(content, started.json()["id"]) == ADMIN_MAXIMUM
    over = {**body, "budget": {"max_steps": 10_000}}
    refused = budgeted.post("/v1/agent/runs", json=over, headers=key[Role.admin])
    assert refused.status_code == 422 and "max_steps" in refused.json()["error"]["message"]
    # Agent runs start only through their own route, which holds them to the caller's maximum.
    generic = budgeted.post(
        "/v1/runs", json={"program": "agent.answer", "state": over}, headers=key[Role.admin]
    )
    assert generic.status_code == 403


def test_the_default_daily_budget_applies_to_a_tenant_without_one(
    content: Harness, settings: Settings, environment: ContentEnvironment
) -> None:
    budgeted_settings = settings.model_copy(update={"tenant_daily_budget_usd": 0.5})
    agent = content.services.agent
    use_models(
        content.services,
        agent.models,
        content.database,
        budgets=BudgetPolicy.from_settings(budgeted_settings),
    )
    app = create_app(settings=budgeted_settings, database=content.database, services=content.services)
    app.state.kicker = content.kicker
    key = keys(content)
    with content.database.tenant_session(content.tenant_id) as session:
        session.execute(
            text(
                "INSERT INTO agent_usage (tenant_id, day, target, model, calls, input_tokens, "
                "cached_input_tokens, output_tokens, cost_usd) "
                "VALUES (:t, current_date, 'paid', 'paid-1', 1, 1000, 0, 100, 0.75)"
            ),
            {"t": content.tenant_id},
        )
        session.commit()
    with TestClient(app) as client:
        status = client.get("/v1/usage", headers=key[Role.admin]).json()["budget"]
        assert status["daily_usd"] == 0.5 and status["default"] is True
        assert "daily model budget of $0.50 is spent" in status["stopped"]

        started = client.post("/v1/agent/runs", json={"question": "Anything?"}, headers=key[Role.reader])
        content.drive()
        run = client.get(f"/v1/agent/runs/{started.json()['id']}", headers=key[Role.reader]).json()
        assert run["answer"] is None and "daily model budget" in str(run)
        assert run["status"] == "failed" and run["error_code"] == "tenant_budget_exceeded"

        # The tenant's own budget, once set, is the one that counts.
        own = client.put("/v1/usage/budget", json={"daily_usd": 2.0}, headers=key[Role.admin]).json()
        assert own["daily_usd"] == 2.0 and own["default"] is False and own["stopped"] is None
        cleared = client.put("/v1/usage/budget", json={"daily_usd": None}, headers=key[Role.admin]).json()
        assert cleared["daily_usd"] == 0.5 and cleared["default"] is True
