"""Prometheus metrics at /metrics.

HTTP latency is measured in each API process. Everything else is read from the database when
Prometheus scrapes (cached for a few seconds), so every API replica reports the same truth about
work that happens in worker processes: runs by program and status, queue depth, step durations,
recoveries, provider latency and errors by target, tokens and cost by tenant and model, and
ingestion throughput.

Access: with QUIRE_METRICS_TOKEN set, scrapes must send it as a bearer token; without it, only
requests from the machine itself (loopback) are answered, because the figures span tenants.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quire.agent import usage
from quire.content.service import version_counts
from quire.core.db import Database
from quire.core.pgqueue import message_counts
from quire.core.workers import alive_workers
from quire.runtime import stats
from quire.runtime.events import RunEventType
from quire.runtime.stats import Buckets

STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CACHE_SECONDS = 10.0


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "quire_http_requests", "HTTP requests served.", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "quire_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=registry,
        )


class HttpMetricsMiddleware:
    """Counts and times requests by route template (/v1/documents/{document_id}, not the id)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


EVENT_COUNTERS = (
    ("quire_run_recoveries", RunEventType.run_recovered, "Runs resumed after their worker was lost."),
    ("quire_step_retries", RunEventType.step_retrying, "Step attempts that failed and were retried."),
    ("quire_step_throttles", RunEventType.step_throttled, "Steps parked by a Retry-After."),
)


def _histogram(
    name: str, documentation: str, label_names: list[str], buckets: Buckets
) -> HistogramMetricFamily:
    """A histogram from rows of (labels..., count, sum, count <= bound 1, count <= bound 2, ...)."""
    family = HistogramMetricFamily(name, documentation, labels=label_names)
    width = len(label_names)
    for row in buckets.rows:
        labels = [str(v) for v in row[:width]]
        count, total = int(row[width]), float(row[width + 1] or 0)
        cumulative = [(str(bound), int(row[width + 2 + i])) for i, bound in enumerate(buckets.bounds)]
        family.add_metric(labels, [*cumulative, ("+Inf", count)], sum_value=total)
    return family


class DatabaseCollector(Collector):
    """Metrics read from the database across tenants (a system session), through the packages'
    own queries."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache: tuple[float, list[Any]] = (0.0, [])
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self._lock:
            stamp, families = self._cache
            if time.monotonic() - stamp > CACHE_SECONDS:
                families = self._read()
                self._cache = (time.monotonic(), families)
        yield from families

    def _read(self) -> list[Any]:
        families: list[Any] = []
        with self.database.system_session() as session:
            runs = GaugeMetricFamily(
                "quire_runs", "Runs by program and status.", labels=["program", "status"]
            )
            for program, status, count in stats.runs_by_program(session):
                runs.add_metric([program, status], count)
            families.append(runs)
            due, _ = stats.due_runs(session)
            families.append(
                GaugeMetricFamily(
                    "quire_runs_due", "Runs due to move but not running (queue depth).", value=due
                )
            )
            queue = GaugeMetricFamily(
                "quire_queue_messages", "Messages in the PostgreSQL queue.", labels=["queue", "state"]
            )
            # The queue is the broker's (role quire_queue): read on the login's own connection.
            with self.database.raw_connection() as conn:
                for queue_name, state, count in message_counts(conn):
                    queue.add_metric([queue_name, state], count)
                conn.rollback()
            families.append(queue)
            families.append(
                _histogram(
                    "quire_step_duration_seconds",
                    "Durations of recorded steps.",
                    ["program"],
                    stats.step_durations(session, STEP_BUCKETS),
                )
            )
            counted = stats.event_counts(session, [kind for _, kind, _ in EVENT_COUNTERS])
            for name, kind, documentation in EVENT_COUNTERS:
                families.append(CounterMetricFamily(name, documentation, value=counted[kind]))
            families.append(
                _histogram(
                    "quire_provider_latency_seconds",
                    "Model call latency by target.",
                    ["target"],
                    usage.model_call_latencies(session, LATENCY_BUCKETS),
                )
            )
            errors = CounterMetricFamily(
                "quire_provider_errors",
                "Failed model calls by target and outcome.",
                labels=["target", "outcome"],
            )
            for target, outcome, count in usage.model_fallbacks(session):
                errors.add_metric([target, outcome], count)
            families.append(errors)
            tokens = CounterMetricFamily(
                "quire_model_tokens",
                "Model tokens by tenant, model and kind.",
                labels=["tenant", "model", "kind"],
            )
            cost = CounterMetricFamily(
                "quire_model_cost_usd", "Model spend by tenant and model.", labels=["tenant", "model"]
            )
            for tenant, model, input_tokens, cached, output, spent in usage.usage_by_tenant_and_model(
                session
            ):
                tokens.add_metric([tenant, model, "input"], input_tokens)
                tokens.add_metric([tenant, model, "cached_input"], cached)
                tokens.add_metric([tenant, model, "output"], output)
                cost.add_metric([tenant, model], spent)
            families += [tokens, cost]
            ingested = CounterMetricFamily(
                "quire_document_versions", "Document versions by status.", labels=["status"]
            )
            pages = 0
            for status, count, page_count in version_counts(session):
                ingested.add_metric([status], count)
                if status == "indexed":
                    pages = page_count
            families.append(ingested)
            families.append(
                CounterMetricFamily("quire_ingested_pages", "Pages of indexed versions.", value=pages)
            )
        families.append(
            GaugeMetricFamily(
                "quire_workers_alive",
                "Worker processes seen in the last three heartbeats.",
                value=alive_workers(self.database),
            )
        )
        return families


def metrics_router(*, registry: CollectorRegistry, token: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        if token:
            sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent, token):
                return PlainTextResponse(
                    "metrics need QUIRE_METRICS_TOKEN as a bearer token\n", status_code=401
                )
        elif request.client is None or request.client.host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            return PlainTextResponse(
                "set QUIRE_METRICS_TOKEN to scrape metrics from another host\n", status_code=403
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_metrics(app: Any, database: Database, *, token: str) -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    registry.register(DatabaseCollector(database))
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.include_router(metrics_router(registry=registry, token=token))
