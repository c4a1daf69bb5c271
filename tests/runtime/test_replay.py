"""Replay: completed steps never run again, whatever the moment a worker dies."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.errors import NonDeterminism
from quire.runtime.programs import program
from tests.harness import Harness

STEPS = 4
calls: Counter[str] = Counter()
crash_plan: dict[str, tuple[str, int] | None] = {"at": None}


class Crash(BaseException):
    """A worker dying mid-flight: nothing after it runs, nothing is cleaned up."""


def maybe_crash(moment: str, index: int) -> None:
    if crash_plan["at"] == (moment, index):
        crash_plan["at"] = None
        raise Crash(f"{moment} step {index}")


class Tally(BaseModel):
    total: int = 0
    trail: list[str] = []


def counted(index: int, total: int) -> int:
    calls[f"step{index}"] += 1
    maybe_crash("during", index)
    return total + index + 1


@program("test.counting")
def counting(ctx: RunContext, state: Tally) -> Tally:
    for index in range(STEPS):
        maybe_crash("before", index)
        state.total = ctx.step(f"step{index}", counted, index, state.total)
        state.trail.append(f"step{index}")
        maybe_crash("after", index)
    return state


def run_to_completion(harness: Harness) -> Tally:
    run_id = harness.start("test.counting", Tally())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            harness.drive(until=0.2)
        except Crash:
            continue
        run = harness.run(run_id)
        if run.status == "completed":
            assert run.state is not None
            return Tally.model_validate(run.state)
    raise AssertionError(f"run did not complete: {harness.run(run_id).status}")


@pytest.fixture(autouse=True)
def reset() -> None:
    calls.clear()
    crash_plan["at"] = None


def test_a_run_without_faults(harness: Harness) -> None:
    final = run_to_completion(harness)
    assert final.total == 1 + 2 + 3 + 4
    assert calls == {f"step{i}": 1 for i in range(STEPS)}


@pytest.mark.parametrize("moment", ["before", "during", "after"])
@pytest.mark.parametrize("index", range(STEPS))
def test_a_crash_replays_without_rerunning_completed_steps(harness: Harness, moment: str, index: int) -> None:
    crash_plan["at"] = (moment, index)
    final = run_to_completion(harness)
    assert crash_plan["at"] is None, "the crash did happen"
    assert final == Tally(total=10, trail=[f"step{i}" for i in range(STEPS)])
    expected = {f"step{i}": 1 for i in range(STEPS)}
    if moment == "during":
        expected[f"step{index}"] = 2  # the interrupted attempt, then the one that committed
    assert calls == expected


def test_recovery_is_recorded(harness: Harness) -> None:
    crash_plan["at"] = ("after", 1)
    run_id = harness.start("test.counting", Tally())
    with pytest.raises(Crash):
        harness.drive()
    time.sleep(1.1)  # the lease runs out
    harness.drive(until=0.5)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert "run.recovered" in harness.events(run_id)


def test_a_changed_step_order_is_refused_on_replay(harness: Harness) -> None:
    from quire.runtime.programs import registry

    @program("test.reordered")
    def before(ctx: RunContext, state: Tally) -> Tally:
        ctx.step("a", lambda: 1)
        ctx.wait_for_signal("go")
        return state

    run_id = harness.start("test.reordered", Tally())
    harness.drive()
    assert harness.run(run_id).status == "waiting"

    def after(ctx: RunContext, state: Tally) -> Tally:
        ctx.step("b", lambda: 1)  # renamed without ctx.patched
        ctx.wait_for_signal("go")
        return state

    registry.programs["test.reordered"][1] = registry.programs["test.reordered"][1].__class__(
        name="test.reordered", version=1, function=after, state_type=Tally
    )
    harness.signal(run_id, "go")
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "failed"
    assert run.error is not None and "ctx.patched" in run.error
    assert NonDeterminism.code == "non_determinism"


class Long(BaseModel):
    steps: int = 25


@program("test.long")
def long_program(ctx: RunContext, state: Long) -> Long:
    for index in range(state.steps):
        ctx.emit("progress", {"done": index})
        ctx.step(f"s{index}", counted, index, 0)
    return state


def test_a_long_run_yields_its_worker_in_bounded_slices(harness: Harness) -> None:
    harness.executor.slice_steps = 10
    run_id = harness.start("test.long", Long())
    advances = harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed"
    assert advances == 3  # 25 steps in slices of 10
    events = harness.events(run_id)
    assert events.count("run.yielded") == 2
    assert events.count("progress") == 25  # each emitted once, though replayed twice
    assert calls == {f"step{i}": 1 for i in range(25)}
