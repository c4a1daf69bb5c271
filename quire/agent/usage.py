"""Usage and spend per tenant, model and day; tenant budgets that stop new model calls."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel
from sqlalchemy import text
from sqlmodel import Session

from quire.agent.events import AgentEventType
from quire.agent.messages import Usage
from quire.runtime.stats import Buckets, histogram_sql


def record_usage(
    session: Session, *, tenant_id: uuid.UUID, target: str, model: str, usage: Usage, cost: float
) -> None:
    """Add one model call to today's totals (in the caller's transaction: the model step's)."""
    session.execute(
        text(
            """
            INSERT INTO agent_usage (tenant_id, day, target, model, calls, input_tokens, cached_input_tokens,
                                     output_tokens, cost_usd)
            VALUES (:tenant, current_date, :target, :model, 1, :input, :cached, :output, :cost)
            ON CONFLICT (tenant_id, day, target, model) DO UPDATE SET
                calls = agent_usage.calls + 1,
                input_tokens = agent_usage.input_tokens + EXCLUDED.input_tokens,
                cached_input_tokens = agent_usage.cached_input_tokens + EXCLUDED.cached_input_tokens,
                output_tokens = agent_usage.output_tokens + EXCLUDED.output_tokens,
                cost_usd = agent_usage.cost_usd + EXCLUDED.cost_usd
            """
        ),
        {
            "tenant": tenant_id,
            "target": target,
            "model": model,
            "input": usage.input_tokens,
            "cached": usage.cached_input_tokens,
            "output": usage.output_tokens,
            "cost": cost,
        },
    )


def spent_today(session: Session) -> float:
    value = session.execute(
        text("SELECT coalesce(sum(cost_usd), 0) FROM agent_usage WHERE day = current_date")
    ).scalar()
    return float(value or 0)


def daily_budget(session: Session, *, default_usd: float | None) -> float | None:
    """The tenant's daily budget: its own, else the installation's default (None: no limit)."""
    own = tenant_budget(session)
    return own if own is not None else default_usd


def tenant_budget_reason(session: Session, *, default_usd: float | None) -> str | None:
    """Why the tenant may make no more model calls today, or None."""
    own = tenant_budget(session)
    budget = own if own is not None else default_usd
    if budget is None:
        return None
    spent = spent_today(session)
    if spent >= budget:
        whose = (
            ""
            if own is not None
            else "; it is the default for tenants without one, QUIRE_TENANT_DAILY_BUDGET_USD"
        )
        return f"the tenant's daily model budget of ${budget:.2f} is spent (${spent:.4f} today{whose})"
    return None


def set_tenant_budget(session: Session, *, tenant_id: uuid.UUID, daily_usd: float | None) -> None:
    if daily_usd is None:
        session.execute(text("DELETE FROM agent_tenant_budget WHERE tenant_id = :t"), {"t": tenant_id})
        return
    session.execute(
        text(
            "INSERT INTO agent_tenant_budget (tenant_id, daily_usd) VALUES (:t, :d) "
            "ON CONFLICT (tenant_id) DO UPDATE SET daily_usd = EXCLUDED.daily_usd"
        ),
        {"t": tenant_id, "d": daily_usd},
    )


def tenant_budget(session: Session) -> float | None:
    """The daily budget the tenant set itself, if any."""
    budget = session.execute(text("SELECT daily_usd FROM agent_tenant_budget")).scalar()
    return None if budget is None else float(budget)


class UsageDay(BaseModel):
    """One day of one target's model usage (the API's usage report and the console's charts)."""

    day: date
    target: str
    model: str
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def series(self) -> str:
        """How a chart names it: the target, and its model when they differ."""
        return self.target if self.target == self.model else f"{self.target} ({self.model})"


def usage_report(session: Session, *, since: date | None = None, until: date | None = None) -> list[UsageDay]:
    """The tenant's usage per day, target and model, from `since` to `until` (both included)."""
    rows = session.execute(
        text(
            "SELECT day, target, model, calls, input_tokens, cached_input_tokens, output_tokens, cost_usd "
            "FROM agent_usage WHERE (CAST(:since AS date) IS NULL OR day >= :since) "
            "AND (CAST(:until AS date) IS NULL OR day <= :until) ORDER BY day, target"
        ),
        {"since": since, "until": until},
    ).mappings()
    return [UsageDay.model_validate(dict(row)) for row in rows]


# What the operator's /metrics reads (in a system session: every tenant's).


def usage_by_tenant_and_model(session: Session) -> list[tuple[str, str, int, int, int, float]]:
    """(tenant name, model, input tokens, cached input tokens, output tokens, cost in USD)."""
    rows = session.execute(
        text(
            "SELECT t.name, u.model, sum(u.input_tokens), sum(u.cached_input_tokens), "
            "sum(u.output_tokens), sum(u.cost_usd) "
            "FROM agent_usage u JOIN core_tenant t ON t.id = u.tenant_id GROUP BY 1, 2"
        )
    ).all()
    return [(str(t), str(m), int(i), int(c), int(o), float(s)) for t, m, i, c, o, s in rows]


def model_call_latencies(session: Session, bounds: tuple[float, ...]) -> Buckets:
    """Model call latency in seconds by target, from the runs' `model.call` events."""
    latency = "(data->>'latency_ms')::float8 / 1000"
    source = f"runtime_event WHERE type = '{AgentEventType.model_call}'"
    rows = session.execute(text(histogram_sql(latency, source, "data->>'target'", bounds))).all()
    return Buckets(bounds=bounds, rows=[tuple(row) for row in rows])


def model_fallbacks(session: Session) -> list[tuple[str, str, int]]:
    """(target, outcome, count) of model calls that failed over to the next target."""
    rows = session.execute(
        text(
            "SELECT data->>'target', data->>'outcome', count(*) FROM runtime_event "
            f"WHERE type = '{AgentEventType.model_fallback}' GROUP BY 1, 2"
        )
    ).all()
    return [(t or "", o or "", int(n)) for t, o, n in rows]
