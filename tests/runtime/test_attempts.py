"""One procedure for every attempt: `ctx.step` and the inline steps of `ctx.parallel` log, trace,
retry and park the same way."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from quire.core import tracing
from quire.core.logcontext import ContextFilter
from quire.runtime.context import RunContext
from quire.runtime.errors import RetryAfter
from quire.runtime.programs import program
from quire.runtime.retry import RetryPolicy
from tests.harness import Harness

log = logging.getLogger("tests.runtime.attempts")
attempts: Counter[str] = Counter()
FAST = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1)


class Fan(BaseModel):
    failures: int = 0
    results: list[str] = []


def call(name: str, failures: int = 0) -> str:
    attempts[name] += 1
    log.info("calling %s", name)
    if attempts[name] <= failures:
        raise ConnectionError(f"{name} attempt {attempts[name]} failed")
    return f"{name} done"


@program("test.attempts.fan")
def fan(ctx: RunContext, state: Fan) -> Fan:
    state.results.append(ctx.step("alone", call, "alone"))
    outcomes = ctx.parallel(
        [("steady", call, ("steady",)), ("flaky", call, ("flaky", state.failures))], retry=FAST
    )
    state.results += [o if isinstance(o, str) else f"failed: {o.error}" for o in outcomes]
    return state


class Records(logging.Handler):
    """Log records as the production filter leaves them: with the context they were made in."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def reset() -> None:
    attempts.clear()


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Spans of this test only (the global tracer provider can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("quire"))
    return exporter


def test_an_inline_step_logs_with_its_run_and_step_like_any_step(harness: Harness, records: Records) -> None:
    run_id = harness.start("test.attempts.fan", Fan())
    harness.drive()
    assert harness.run(run_id).status == "completed"
    context = {(getattr(r, "run_id", None), getattr(r, "step", None)) for r in records.records}
    assert context == {(run_id, "0:alone"), (run_id, "1:steady"), (run_id, "2:flaky")}


def test_an_inline_step_has_its_span_in_the_run_trace_like_any_step(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    harness.start("test.attempts.fan", Fan())
    harness.drive()
    finished = {span.name: span for span in spans.get_finished_spans()}
    run = finished["run test.attempts.fan"]
    for name in ("step alone", "step steady", "step flaky"):
        assert finished[name].parent is not None, name
        assert finished[name].parent.span_id == run.context.span_id, name
        assert finished[name].context.trace_id == run.context.trace_id, name


def test_an_inline_retry_parks_the_run_once_its_siblings_are_done(harness: Harness) -> None:
    # An inline step cannot park on its own while its siblings run (see quire/runtime/steps.py):
    # the siblings commit, then the run parks for the retry, holding no worker.
    run_id = harness.start("test.attempts.fan", Fan(failures=1))
    harness.drive()  # no sweeper: nothing wakes the run
    run = harness.run(run_id)
    assert run.status == "sleeping"
    assert run.waiting_for is not None and run.waiting_for["kind"] == "retry"
    assert run.waiting_for["seq"] == 2 and run.waiting_for["step"] == "flaky"
    assert [(s.name, s.status) for s in run.steps] == [("alone", "completed"), ("steady", "completed")]
    assert "step.retrying" in harness.events(run_id)

    harness.drive(until=2)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"failures": 1, "results": ["alone done", "steady done", "flaky done"]}
    assert attempts == {"alone": 1, "steady": 1, "flaky": 2}
    assert [s.attempt for s in run.steps] == [1, 1, 2]


def test_inline_attempts_run_out_into_step_failed_across_parks(harness: Harness) -> None:
    run_id = harness.start("test.attempts.fan", Fan(failures=5))
    harness.drive(until=3)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state is not None
    assert run.state["results"][-1] == "failed: ConnectionError: flaky attempt 3 failed"
    assert attempts["flaky"] == 3
    assert (run.steps[-1].status, run.steps[-1].attempt) == ("failed", 3)
    assert harness.events(run_id).count("step.retrying") == 2


def busy(name: str) -> str:
    attempts[name] += 1
    if attempts[name] == 1:
        raise RetryAfter(0.5, "429 from the provider")
    return f"{name} served"


@program("test.attempts.crowd")
def crowd(ctx: RunContext, state: Fan) -> Fan:
    outcomes = ctx.parallel([("busy", busy, ("busy",)), ("flaky", call, ("flaky", 1))], retry=FAST)
    state.results = [o if isinstance(o, str) else f"failed: {o.error}" for o in outcomes]
    return state


def test_the_longest_wait_decides_when_a_parallel_block_tries_again(harness: Harness) -> None:
    run_id = harness.start("test.attempts.crowd", Fan())
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "throttled"  # the provider's 0.5 s outlasts the back-off
    assert run.waiting_for is not None
    assert (run.waiting_for["kind"], run.waiting_for["step"]) == ("throttled", "busy")
    assert run.waiting_for["attempts"] == {"0": 0, "1": 1}  # a throttle spends no attempt
    assert {"step.throttled", "step.retrying"} <= set(harness.events(run_id))

    run = harness.drive_until(run_id, "completed")
    assert run.state == {"failures": 0, "results": ["busy served", "flaky done"]}
    assert [(s.name, s.attempt) for s in run.steps] == [("busy", 1), ("flaky", 2)]
