"""What operators rely on: metrics, rate limits, request ids, log context and redaction, traces."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from quire.app.api import create_app
from quire.app.logs import JsonFormatter
from quire.core.deps import CallerDep
from quire.core.logcontext import ContextFilter, redact
from quire.core.models import Role
from quire.core.settings import Settings
from quire.runtime.context import RunContext
from quire.runtime.programs import program
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

log = logging.getLogger("tests.operations")


class Counter(BaseModel):
    value: int = 0


@program("test.ops")
def counting(ctx: RunContext, state: Counter) -> Counter:
    state.value = ctx.step("count", lambda: state.value + 1)
    log.warning("counted with key qk_abcdefgh0123456789abcdefghijklmnop")
    return state


class Capture(logging.Handler):
    """The production filter and formatter, writing to a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.StringIO()
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.write(self.format(record) + "\n")

    def lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def client_for(harness: Harness, settings: Settings, host: str = "127.0.0.1") -> TestClient:
    app = create_app(settings=settings, database=harness.database)
    app.state.kicker = harness.kicker
    return TestClient(app, client=(host, 40000))


def admin_key(harness: Harness, role: Role = Role.admin) -> dict[str, str]:
    return auth(make_key(harness.database, TenantFixture(id=harness.tenant_id, name="ops"), role))


def test_metrics_report_runs_and_requests_to_local_scrapers_only(
    harness: Harness, settings: Settings
) -> None:
    run_id = harness.start("test.ops", Counter())
    harness.drive()
    assert harness.run(run_id).status == "completed"

    with client_for(harness, settings) as local:
        assert local.get("/v1/runs", headers=admin_key(harness)).status_code == 200
        scraped = local.get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    assert 'quire_runs{program="test.ops",status="completed"}' in text
    assert 'quire_step_duration_seconds_count{program="test.ops"}' in text
    # Requests are counted by route template, so ids do not explode the label set.
    assert 'quire_http_requests_total{method="GET",route="/v1/runs",status="200"} 1.0' in text

    with client_for(harness, settings, host="203.0.113.9") as remote:
        refused = remote.get("/metrics")
    assert refused.status_code == 403 and "QUIRE_METRICS_TOKEN" in refused.text

    with client_for(
        harness, settings.model_copy(update={"metrics_token": "s3cret-token"}), "203.0.113.9"
    ) as remote:
        assert remote.get("/metrics").status_code == 401
        assert remote.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert remote.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_rate_limit_is_per_api_key_and_says_when_to_retry(harness: Harness, settings: Settings) -> None:
    # 12 a minute: bursts of 2, then a token every 5 s. The slow refill keeps the test honest on
    # a busy machine (at 60 a minute, eleven slow requests could outlast a refill).
    limited = settings.model_copy(update={"rate_limit_per_minute": 12})
    first, second = admin_key(harness), admin_key(harness, Role.reader)
    with client_for(harness, limited) as api:
        statuses = [api.get("/v1/runs", headers=first).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = api.get("/v1/runs", headers=first)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 5
        assert refused.json()["error"]["code"] == "rate_limited"
        # Another key has its own bucket; no key at all is an authentication error, not a 429.
        assert api.get("/v1/runs", headers=second).status_code == 200
        assert api.get("/v1/runs").status_code == 401
        # Health checks are never limited.
        assert all(api.get("/healthz").status_code == 200 for _ in range(15))


def test_requests_carry_an_id_and_logs_carry_request_tenant_and_principal(
    harness: Harness, settings: Settings, captured: Capture
) -> None:
    client = client_for(harness, settings)

    @client.app.get("/v1/test-logged")  # type: ignore[attr-defined]
    def logged(caller: CallerDep) -> dict[str, str]:
        log.warning("handled with header Bearer qk_zzzzzzzzsecretsecretsecret")
        return {}

    key = admin_key(harness)
    with client:
        minted = client.get("/v1/test-logged", headers=key)
        kept = client.get("/v1/test-logged", headers={**key, "X-Request-ID": "req-from-client"})
    assert len(minted.headers["x-request-id"]) == 32
    assert kept.headers["x-request-id"] == "req-from-client"

    lines = captured.lines()
    assert [line["request_id"] for line in lines] == [minted.headers["x-request-id"], "req-from-client"]
    assert all(line["tenant_id"] == str(harness.tenant_id) and line.get("principal_id") for line in lines)
    assert "secretsecret" not in captured.buffer.getvalue()
    assert "Bearer …[redacted]" in lines[0]["message"]


def test_logs_inside_a_run_name_the_run_and_step_and_mask_keys(harness: Harness, captured: Capture) -> None:
    run_id = harness.start("test.ops", Counter())
    harness.drive()
    (line,) = captured.lines()
    assert line["run_id"] == str(run_id) and line["tenant_id"] == str(harness.tenant_id)
    assert "0123456789" not in line["message"] and "qk_abcdefgh…[redacted]" in line["message"]


def test_redaction_covers_provider_keys_passwords_and_tracebacks() -> None:
    assert redact("OPENAI sk-proj1234567890abcdef") == "OPENAI sk-pr…[redacted]"
    assert redact("anthropic sk-ant-api03-abcdefghijkl") == "anthropic sk-ant-ap…[redacted]"
    assert redact("gemini AIzaSyA1234567890abcdefghijklmnop") == "gemini AIzaSy…[redacted]"
    assert redact("postgres password=hunter22 host=x") == "postgres password=…[redacted] host=x"
    assert redact("to postgresql://quire:pw-123@db:5432/q") == "to postgresql://quire:…[redacted]@db:5432/q"
    assert redact("nothing secret here: 42 tokens") == "nothing secret here: 42 tokens"

    handler = Capture()
    try:
        raise ValueError("provider refused api_key=sk-abcdefghijklmnopqrst")
    except ValueError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "call failed", (), sys.exc_info())
    handler.handle(record)
    (line,) = handler.lines()
    assert "abcdefghijklmnopqrst" not in line["exception"] and "ValueError" in line["exception"]


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """An in-memory trace exporter (the global provider can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_a_trace_continues_from_the_caller_through_the_api_into_the_worker(
    harness: Harness, settings: Settings, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    with client_for(harness, settings) as api:
        created = api.post(
            "/v1/runs",
            json={"program": "test.ops", "state": {"value": 41}},
            headers={**admin_key(harness), "traceparent": traceparent},
        )
    assert created.status_code == 202
    harness.drive()
    assert harness.run(uuid.UUID(created.json()["id"])).state == {"value": 42}

    in_trace = {s.name for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id}
    assert {"HTTP POST /v1/runs", "run test.ops", "step count"} <= in_trace
