"""Step retries, throttling, permanent failures, fencing and bounded recoveries."""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from quire.runtime.context import RunContext
from quire.runtime.errors import NonRetryable, RetryAfter, StepFailed
from quire.runtime.executor import Executor
from quire.runtime.leases import claim
from quire.runtime.programs import program
from quire.runtime.retry import RetryPolicy
from tests.harness import Harness

attempts: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def reset() -> None:
    attempts.clear()


class Job(BaseModel):
    failures: int = 0
    outcome: str | None = None


def flaky(name: str, failures: int) -> str:
    attempts[name] += 1
    if attempts[name] <= failures:
        raise ConnectionError(f"attempt {attempts[name]} failed")
    return f"ok after {attempts[name]}"


@program("test.flaky")
def flaky_program(ctx: RunContext, state: Job) -> Job:
    fast = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1)
    try:
        state.outcome = ctx.step("call", flaky, "call", state.failures, retry=fast)
    except StepFailed as failure:
        state.outcome = f"gave up: {failure.error}"
    return state


class Nap(BaseModel):
    seconds: float


def read_then_nap(ctx: RunContext, seconds: float) -> None:
    ctx.session.execute(text("SELECT 1"))  # the step's transaction begins here, before the work
    time.sleep(seconds)


@program("test.nap")
def nap_program(ctx: RunContext, state: Nap) -> Nap:
    ctx.step("nap", read_then_nap, ctx, state.seconds)
    return state


def test_a_step_records_how_long_its_work_took(harness: Harness) -> None:
    run_id = harness.start("test.nap", Nap(seconds=0.3))
    harness.drive()
    step = harness.run(run_id).steps[0]
    took = (step.finished_at - step.started_at).total_seconds()
    assert 0.3 <= took < 5, took  # the metric quire_step_duration_seconds is built on these


def test_a_step_is_retried_with_backoff_until_it_succeeds(harness: Harness) -> None:
    run_id = harness.start("test.flaky", Job(failures=2))
    harness.drive(until=3)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"failures": 2, "outcome": "ok after 3"}
    assert harness.events(run_id).count("step.retrying") == 2
    assert run.steps[0].attempt == 3


def test_attempts_run_out_into_step_failed(harness: Harness) -> None:
    run_id = harness.start("test.flaky", Job(failures=5))
    harness.drive(until=3)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state is not None
    assert run.state["outcome"] == "gave up: ConnectionError: attempt 3 failed"
    assert attempts["call"] == 3
    assert run.steps[0].status == "failed"


def test_a_retry_parks_the_run_instead_of_holding_a_worker(harness: Harness) -> None:
    run_id = harness.start("test.flaky", Job(failures=1))
    harness.drive()  # no sweeper: the first attempt fails and the run parks
    run = harness.run(run_id)
    assert run.status == "sleeping"
    assert run.waiting_for is not None and run.waiting_for["kind"] == "retry"
    assert run.attempt == 1


class Quota(BaseModel):
    calls: int = 0


def throttled_call() -> str:
    attempts["throttled"] += 1
    if attempts["throttled"] == 1:
        raise RetryAfter(1.0, "429 from the provider")
    return "served"


@program("test.throttled")
def throttled_program(ctx: RunContext, state: Quota) -> Quota:
    ctx.step("call", throttled_call)
    state.calls = attempts["throttled"]
    return state


def test_retry_after_parks_the_run_as_throttled_until_the_time_given(harness: Harness) -> None:
    run_id = harness.start("test.throttled", Quota())
    started = time.monotonic()
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "throttled"
    assert run.attempt == 0  # a throttle is not a failed attempt
    harness.drive_until(run_id, "completed")
    assert time.monotonic() - started >= 1.0
    assert "step.throttled" in harness.events(run_id)


@program("test.fatal")
def fatal(ctx: RunContext, state: Job) -> Job:
    def refuse() -> None:
        attempts["fatal"] += 1
        raise NonRetryable("the document is encrypted")

    ctx.step("parse", refuse)
    return state


def test_a_non_retryable_error_fails_the_run_at_once_with_its_reason(harness: Harness) -> None:
    run_id = harness.start("test.fatal", Job())
    harness.drive(until=1)
    run = harness.run(run_id)
    assert run.status == "failed"
    assert run.error == "step 'parse' failed: NonRetryable: the document is encrypted"
    assert attempts["fatal"] == 1


class Effects(BaseModel):
    pass


@program("test.effects")
def effects(ctx: RunContext, state: Effects) -> Effects:
    def write() -> None:
        attempts["write"] += 1
        ctx.session.execute(
            text(
                "INSERT INTO runtime_event (tenant_id, run_id, type, data, created_at) "
                "VALUES (:t, :r, 'effect', NULL, now())"
            ),
            {"t": ctx.tenant_id, "r": ctx.run_id},
        )

    ctx.step("write", write)
    ctx.wait_for_signal("go")
    return state


def test_a_worker_that_lost_its_lease_cannot_commit(harness: Harness) -> None:
    run_id = harness.start("test.effects", Effects())
    first = harness.kicker.pending.popleft()
    # Worker A claims the run; its lease expires before it writes...
    stale = Executor(harness.database, harness.kicker, lease_ttl=0.2, owner="A")
    claimed = claim(harness.database, run_id=first[0], epoch=first[1], owner="A", ttl=0.2)
    assert claimed is not None
    time.sleep(0.3)
    # ...so the sweeper hands the run to worker B, which runs it.
    harness.sweeper.sweep_once()
    harness.drive()
    assert harness.run(run_id).status == "waiting"
    # A now tries to carry on with its old epoch: every write is refused.
    from quire.runtime.context import RunContext as Ctx
    from quire.runtime.errors import LeaseLost

    ctx = Ctx(stale, claimed[0], claimed[1])
    with pytest.raises(LeaseLost):
        ctx.step("write", lambda: None)
    with harness.database.tenant_session(harness.tenant_id) as session:
        effects_written = session.execute(
            text("SELECT count(*) FROM runtime_event WHERE run_id = :r AND type = 'effect'"),
            {"r": run_id},
        ).scalar_one()
    assert effects_written == 1
    assert attempts["write"] == 1


@program("test.doomed")
def doomed(ctx: RunContext, state: Job) -> Job:
    def crash() -> None:
        attempts["doomed"] += 1
        raise SystemExit("the worker process dies here, every time")

    ctx.step("crash", crash)
    return state


def test_a_run_that_keeps_killing_its_worker_fails_after_bounded_recoveries(
    harness: Harness,
) -> None:
    run_id = harness.start("test.doomed", Job())
    deadline = time.monotonic() + 20
    while harness.run(run_id).status != "failed" and time.monotonic() < deadline:
        with contextlib.suppress(SystemExit):
            harness.drive(until=0.3)
    run = harness.run(run_id)
    assert run.status == "failed"
    assert run.error is not None and "lost 4 times" in run.error and "giving up" in run.error
    assert attempts["doomed"] == 4  # the first run and three recoveries (max_recoveries=3)


class Fan(BaseModel):
    results: list[str] = []


def fan_call(name: str, failures: int) -> str:
    attempts[name] += 1
    if attempts[name] <= failures:
        raise ConnectionError(f"{name} attempt {attempts[name]}")
    if failures < 0:
        raise NonRetryable(f"{name} cannot work")
    return f"{name} done"


@program("test.fan")
def fan(ctx: RunContext, state: Fan) -> Fan:
    fast = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    outcomes = ctx.parallel(
        [("a", fan_call, ("a", 0)), ("b", fan_call, ("b", 1)), ("c", fan_call, ("c", -1))], retry=fast
    )
    state.results = [o if isinstance(o, str) else f"failed: {o.error}" for o in outcomes]
    ctx.wait_for_signal("again")  # forces a replay of the parallel block
    return state


def test_parallel_steps_run_once_each_and_report_failures(harness: Harness) -> None:
    run_id = harness.start("test.fan", Fan())
    # b's retry parks the run (sleeping); the sweeper wakes it; it then waits for the signal.
    harness.drive_until(run_id, "waiting")
    harness.signal(run_id, "again")
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"results": ["a done", "b done", "failed: NonRetryable: c cannot work"]}
    assert attempts == {"a": 1, "b": 2, "c": 1}  # the replay re-ran nothing
    assert [s.status for s in run.steps[:3]] == ["completed", "completed", "failed"]
