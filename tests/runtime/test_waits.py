"""Timers, signals and code changes gated with ctx.patched."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.programs import Program, program, registry
from tests.harness import Harness


class Clock(BaseModel):
    seconds: float = 1.0
    woke_at: float | None = None
    due: float | None = None


def now() -> float:
    return datetime.now(UTC).timestamp()


@program("test.sleeper")
def sleeper(ctx: RunContext, state: Clock) -> Clock:
    # The sleep counts from the moment the run reaches it, which is after this step.
    state.due = ctx.step("due", lambda: now() + state.seconds)
    ctx.sleep(state.seconds)
    state.woke_at = ctx.step("woke", now)
    return state


def test_a_timer_never_fires_early_and_fires_within_seconds(harness: Harness) -> None:
    run_ids = [harness.start("test.sleeper", Clock(seconds=s)) for s in (0.5, 1.0, 1.5)]
    harness.drive()
    for run_id in run_ids:
        run = harness.run(run_id)
        assert run.status == "sleeping" and run.wake_at is not None
    for run_id in run_ids:
        state = Clock.model_validate(harness.drive_until(run_id, "completed").state)
        assert state.woke_at is not None and state.due is not None
        late = state.woke_at - state.due
        assert 0 <= late < 5.0, late  # never early; late only by what a busy machine costs


class Inbox(BaseModel):
    received: list[object] = []


@program("test.inbox")
def inbox(ctx: RunContext, state: Inbox) -> Inbox:
    state.received.append(ctx.wait_for_signal("note"))
    state.received.append(ctx.wait_for_signal("note"))
    return state


def test_a_signal_sent_twice_is_consumed_once(harness: Harness) -> None:
    run_id = harness.start("test.inbox", Inbox())
    harness.drive()
    assert harness.run(run_id).status == "waiting"
    assert harness.signal(run_id, "note", {"n": 1}, key="k1") is True
    assert harness.signal(run_id, "note", {"n": 1}, key="k1") is False
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "waiting"  # still waiting for the second, distinct note
    harness.signal(run_id, "note", {"n": 2}, key="k2")
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"received": [{"n": 1}, {"n": 2}]}


def test_a_signal_sent_before_the_run_waits_is_not_lost(harness: Harness) -> None:
    run_id = harness.start("test.inbox", Inbox())
    harness.signal(run_id, "note", "early", key="a")
    harness.signal(run_id, "note", "earlier-than-the-second-wait", key="b")
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"received": ["early", "earlier-than-the-second-wait"]}


class Patience(BaseModel):
    outcome: str | None = None


@program("test.timeout")
def with_timeout(ctx: RunContext, state: Patience) -> Patience:
    got = ctx.wait_for_signal("answer", timeout=0.5)
    state.outcome = "timed out" if got is None else str(got)
    return state


def test_a_signal_wait_times_out(harness: Harness) -> None:
    run_id = harness.start("test.timeout", Patience())
    started = time.monotonic()
    harness.drive(until=3.0)
    assert harness.run(run_id).state == {"outcome": "timed out"}
    assert time.monotonic() - started >= 0.5


class Path(BaseModel):
    steps: list[str] = []


def old_code(ctx: RunContext, state: Path) -> Path:
    state.steps.append(ctx.step("fetch", lambda: "fetch"))
    ctx.wait_for_signal("continue")
    state.steps.append(ctx.step("finish", lambda: "finish"))
    return state


def new_code(ctx: RunContext, state: Path) -> Path:
    state.steps.append(ctx.step("fetch", lambda: "fetch"))
    if ctx.patched("validate-before-wait"):
        state.steps.append(ctx.step("validate", lambda: "validate"))
    ctx.wait_for_signal("continue")
    state.steps.append(ctx.step("finish", lambda: "finish"))
    return state


def install(function: object) -> None:
    registry.programs.setdefault("test.patched", {})[1] = Program(
        name="test.patched",
        version=1,
        function=function,
        state_type=Path,  # type: ignore[arg-type]
    )


def test_a_run_started_before_a_patched_change_finishes_after_it(harness: Harness) -> None:
    install(old_code)
    old_run = harness.start("test.patched", Path())
    harness.drive()
    assert harness.run(old_run).status == "waiting"

    install(new_code)  # the deploy
    new_run = harness.start("test.patched", Path())
    harness.drive()
    for run_id in (old_run, new_run):
        harness.signal(run_id, "continue")
    harness.drive()

    old, new = harness.run(old_run), harness.run(new_run)
    assert (old.status, new.status) == ("completed", "completed")
    assert old.state == {"steps": ["fetch", "finish"]}
    assert new.state == {"steps": ["fetch", "validate", "finish"]}
    assert [s.kind for s in new.steps].count("patch") == 1
