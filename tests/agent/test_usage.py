"""Usage and spend through the API, and a tenant budget that stops new model calls."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.messages import Message
from quire.core.models import Role
from tests.agent.scripted import ScriptedProvider, install
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness
from tests.services import use_models


def test_usage_is_reported_per_day_and_model_and_a_spent_budget_stops_model_calls(
    api: TestClient, content: Harness
) -> None:
    install(lambda request: Message.assistant("Forty-two."))
    use_models(
        content.services,
        ModelsConfig(
            targets={
                "s": ModelTarget(
                    name="s", provider="scripted", model="m-1", price_input=2.0, price_output=8.0
                )
            },
            routes={"default": Route(name="default", targets=["s"])},
        ),
        content.database,
    )
    tenant = TenantFixture(id=content.tenant_id, name="usage")
    admin, reader = (auth(make_key(content.database, tenant, role)) for role in (Role.admin, Role.reader))

    started = api.post("/v1/agent/runs", json={"question": "What is the answer?"}, headers=reader)
    assert started.status_code == 202
    content.drive()
    first = api.get(f"/v1/agent/runs/{started.json()['id']}", headers=reader).json()
    assert first["status"] == "completed" and first["answer"] == "Forty-two."

    assert api.get("/v1/usage", headers=reader).status_code == 403
    report = api.get("/v1/usage", headers=admin).json()
    (row,) = report["days"]
    usage = first["usage"]
    assert row["day"] == date.today().isoformat() and row["model"] == "m-1" and row["calls"] == 1
    assert row["input_tokens"] == usage["input_tokens"] and row["output_tokens"] == 20
    expected = (usage["input_tokens"] * 2.0 + 20 * 8.0) / 1_000_000
    assert abs(row["cost_usd"] - expected) < 1e-9 and abs(report["total_cost_usd"] - expected) < 1e-6
    assert report["budget"] == {  # the installation's default: this tenant set none
        "daily_usd": 20.0,
        "default": True,
        "spent_today_usd": row["cost_usd"],
        "stopped": None,
    }
    # A window that excludes today is empty; an inverted one is refused with the reason.
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    assert api.get(f"/v1/usage?until={yesterday}", headers=admin).json()["days"] == []
    inverted = api.get(f"/v1/usage?since={date.today().isoformat()}&until={yesterday}", headers=admin)
    assert inverted.status_code == 422 and "is after" in inverted.json()["error"]["message"]

    assert api.put("/v1/usage/budget", json={"daily_usd": -1}, headers=admin).status_code == 422
    assert api.put("/v1/usage/budget", json={"daily_usd": 1}, headers=reader).status_code == 403
    status = api.put("/v1/usage/budget", json={"daily_usd": expected / 2}, headers=admin).json()
    assert status["stopped"] is not None and "daily model budget" in status["stopped"]

    calls_before = len(ScriptedProvider.requests)
    stopped = api.post("/v1/agent/runs", json={"question": "And again?"}, headers=reader)
    content.drive()
    second = api.get(f"/v1/agent/runs/{stopped.json()['id']}", headers=reader).json()
    assert len(ScriptedProvider.requests) == calls_before  # no model was called
    assert second["answer"] is None and "daily model budget" in str(second)
    assert api.get("/v1/usage", headers=admin).json()["days"][0]["calls"] == 1

    # Lifting the tenant's budget (back to the default) lets the next run call the model again.
    assert api.put("/v1/usage/budget", json={"daily_usd": None}, headers=admin).json()["stopped"] is None
    again = api.post("/v1/agent/runs", json={"question": "Once more?"}, headers=reader)
    content.drive()
    assert api.get(f"/v1/agent/runs/{again.json()['id']}", headers=reader).json()["answer"] == "Forty-two."
