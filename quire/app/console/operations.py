"""The operations page, for administrators: runs, failures, queue depth, workers and model spend
of the caller's tenant, with charts drawn on the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from quire.agent.environment import agent_of
from quire.agent.usage import UsageDay, daily_budget, usage_report
from quire.app.console.charts import Series, bar_chart, compact, dollars, sparkline
from quire.app.console.deps import ConsoleSessionDep
from quire.app.console.entries import seconds, tokens
from quire.app.console.pages import render
from quire.app.console.session import ConsoleSession
from quire.core.deps import DatabaseDep
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.workers import live_workers
from quire.runtime import stats

router = APIRouter(prefix="/console", include_in_schema=False)

CHART_WIDTH = 1100  # about the page's width, so that the axis text is drawn near its own size
SPEND_DAYS = 30
SPEND_SERIES = 6  # models charted one by one; the rest are added up as "other"
REFRESH_SECONDS = 30


def get_admin(console: ConsoleSessionDep) -> ConsoleSession:
    console.require(Role.admin)
    return console


AdminConsoleDep = Annotated[ConsoleSession, Depends(get_admin)]


@dataclass(frozen=True)
class ProgramActivity:
    program: str
    started: int
    completed: int
    failed: int
    cancelled: int
    started_line: Markup
    failed_line: Markup


@dataclass
class ModelTotals:
    name: str
    calls: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    days: dict[date, float] = field(default_factory=dict)  # cost per day
    day_tokens: dict[date, int] = field(default_factory=dict)


def program_rows(activity: stats.Activity) -> list[ProgramActivity]:
    rows = []
    for program, counts in activity.by_program.items():
        rows.append(
            ProgramActivity(
                program=program,
                started=sum(counts["started"]),
                completed=sum(counts["completed"]),
                failed=sum(counts["failed"]),
                cancelled=sum(counts["cancelled"]),
                started_line=sparkline(counts["started"], title=f"{program}: runs started per hour"),
                failed_line=sparkline(counts["failed"], title=f"{program}: runs failed per hour", tone="bad"),
            )
        )
    return rows


def runs_chart(activity: stats.Activity) -> Markup:
    return bar_chart(
        [hour.astimezone(UTC).strftime("%H:%M") for hour in activity.hours],
        [
            Series("started", activity.started, "accent"),
            Series("completed", activity.completed, "ok"),
            Series("failed", activity.failed, "bad"),
        ],
        title="Runs started, completed and failed per hour, last 24 hours (UTC)",
        label_every=2,
        width=CHART_WIDTH,
    )


def model_totals(rows: list[UsageDay]) -> list[ModelTotals]:
    """Usage per target and model over the period, the most expensive first."""
    totals: dict[str, ModelTotals] = {}
    for row in rows:
        model = totals.setdefault(row.series, ModelTotals(name=row.series))
        model.calls += row.calls
        model.input_tokens += row.input_tokens
        model.cached_input_tokens += row.cached_input_tokens
        model.output_tokens += row.output_tokens
        model.cost_usd += row.cost_usd
        model.days[row.day] = model.days.get(row.day, 0.0) + row.cost_usd
        model.day_tokens[row.day] = model.day_tokens.get(row.day, 0) + row.input_tokens + row.output_tokens
    return sorted(totals.values(), key=lambda m: (-m.cost_usd, -(m.input_tokens + m.output_tokens), m.name))


def spend_charts(models: list[ModelTotals], days: list[date]) -> tuple[Markup, Markup]:
    """Cost and tokens per day, stacked by model (the smallest folded into "other")."""
    shown, rest = models[:SPEND_SERIES], models[SPEND_SERIES:]
    cost = [Series(m.name, [m.days.get(d, 0.0) for d in days]) for m in shown]
    used = [Series(m.name, [float(m.day_tokens.get(d, 0)) for d in days]) for m in shown]
    if rest:
        cost.append(Series("other", [sum(m.days.get(d, 0.0) for m in rest) for d in days], "muted"))
        used.append(
            Series("other", [sum(float(m.day_tokens.get(d, 0)) for m in rest) for d in days], "muted")
        )
    labels = [d.strftime("%m-%d") for d in days]
    return (
        bar_chart(
            labels,
            cost,
            title="Model spend per day, last 30 days",
            stacked=True,
            fmt=dollars,
            label_every=3,
            width=CHART_WIDTH,
        ),
        bar_chart(
            labels,
            used,
            title="Tokens (input and output) per day, last 30 days",
            stacked=True,
            fmt=compact,
            label_every=3,
            width=CHART_WIDTH,
        ),
    )


def age(now: datetime, then: datetime | None) -> str:
    return seconds((now - then).total_seconds()) if then else ""


@router.get("/operations")
def operations_page(request: Request, console: AdminConsoleDep, database: DatabaseDep) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    postgres_broker = not settings.broker_url
    with database.tenant_session(console.caller.tenant_id) as session:
        now = stats.database_now(session)
        activity = stats.hourly_activity(session, now=now)
        live = stats.live_counts(session)
        depth = stats.queue_depth(session, postgres_broker=postgres_broker)
        failures = stats.recent_failures(session)
        today = now.date()
        days = [today - timedelta(days=SPEND_DAYS - 1 - i) for i in range(SPEND_DAYS)]
        usage = usage_report(session, since=days[0])
        budget = daily_budget(
            session, default_usd=agent_of(request.app.state.services).budgets.default_daily_usd
        )
    workers = live_workers(database)
    models = model_totals(usage)
    cost_chart, tokens_chart = spend_charts(models, days)
    spent_today = sum(row.cost_usd for row in usage if row.day == today)
    return render(
        request,
        "operations.html",
        session=console,
        refresh=REFRESH_SECONDS,
        now=now,
        live=live,
        depth=depth,
        oldest_due=age(now, depth.oldest_due),
        broker_oldest=age(now, depth.broker_oldest),
        broker=settings.broker_url.split("://", 1)[0] if settings.broker_url else "postgresql",
        runs_chart=runs_chart(activity),
        totals={
            "started": sum(activity.started),
            "completed": sum(activity.completed),
            "failed": sum(activity.failed),
            "cancelled": sum(activity.cancelled),
        },
        programs=program_rows(activity),
        failures=failures,
        workers=workers,
        worker_ages={w.id: (age(now, w.started_at), age(now, w.seen_at)) for w in workers},
        models=models,
        cost_chart=cost_chart,
        tokens_chart=tokens_chart,
        spend_total=dollars(sum(m.cost_usd for m in models)),
        spent_today=dollars(spent_today),
        budget=dollars(budget) if budget is not None else None,
        dollars=dollars,
        tokens=tokens,
    )
