"""Replay: completed steps never run again, whatever the moment a worker dies."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.runtime.context import RunContext
from quire.runtime.errors import NonDeterminism, NonRetryable
from quire.runtime.programs import program
from quire.runtime.retry import NO_RETRY
from quire.runtime.tasks import decide_task
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
    run = harness.drive_until(run_id, "completed", tolerate=(Crash,))
    assert run.state is not None
    return Tally.model_validate(run.state)


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
    assert run.status == "blocked" and run.error_code == "replay_mismatch"  # a retry resumes it
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


# A run that touches every kind of step, and its history as recorded by earlier code
# (recorded_history.json): runs parked on that code must replay identically on this one.

RECORDED = Path(__file__).with_name("recorded_history.json")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MOMENT = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.+]+(Z)?")


class Walk(BaseModel):
    seen: list[Any] = []


class Pair(BaseModel):
    number: int
    word: str


def side(name: str) -> str:
    calls[name] += 1
    if name == "refused":
        raise NonRetryable("refused for good")
    return name


def make_pair() -> Pair:
    calls["typed"] += 1
    return Pair(number=7, word="seven")


class Errand(BaseModel):
    note: str = ""


@program("test.every-kind.child")
def every_kind_child(ctx: RunContext, state: Errand) -> Errand:
    state.note = ctx.step("errand", side, "errand")
    return state


@program("test.every-kind")
def every_kind(ctx: RunContext, state: Walk) -> Walk:
    state.seen.append(ctx.step("plain", side, "plain"))
    state.seen.append(ctx.step("typed", make_pair).model_dump())
    outcomes = ctx.parallel([("left", side, ("left",)), ("refused", side, ("refused",))], retry=NO_RETRY)
    state.seen.append([o if isinstance(o, str) else o.error for o in outcomes])
    if ctx.patched("every-kind-extra"):
        state.seen.append(ctx.step("extra", side, "extra"))
    ctx.sleep(0)
    state.seen.append(ctx.wait_for_signal("never", timeout=0))
    note = ctx.receive("note")
    state.seen.append(None if note is None else [note.payload, note.sender_role])
    decision = ctx.human_task("Check the walk", options=["yes", "no"])
    state.seen.append(decision["decision"])
    child_id = ctx.start_child("test.every-kind.child", Errand())
    state.seen.append(ctx.wait_for_child(child_id)["status"])
    return state


EVERY_KIND_END = [
    "plain",
    {"number": 7, "word": "seven"},
    ["left", "NonRetryable: refused for good"],
    "extra",
    None,
    ["hello", None],
    "yes",
    "completed",
]


def history(harness: Harness, run_id: uuid.UUID) -> list[dict[str, Any]]:
    with harness.database.tenant_session(harness.tenant_id) as session:
        rows = session.execute(
            text(
                "SELECT seq, name, kind, status, attempt, result, error FROM runtime_step "
                "WHERE run_id = :r ORDER BY seq"
            ),
            {"r": run_id},
        ).mappings()
        return [dict(row) for row in rows]


def masked(steps: list[dict[str, Any]]) -> str:
    """The history with what differs between runs (ids, clocks) blanked out."""
    return MOMENT.sub("<moment>", UUID.sub("<uuid>", json.dumps(steps, sort_keys=True)))


def walk_every_kind(harness: Harness) -> uuid.UUID:
    run_id = harness.start("test.every-kind", Walk())
    harness.drive()
    assert harness.run(run_id).waiting_for == {"kind": "signal", "name": "note", "seq": 8}
    harness.signal(run_id, "note", "hello")
    harness.drive()
    (task,) = harness.run(run_id).open_tasks
    reviewer = Caller(principal_id=uuid.uuid4(), tenant_id=harness.tenant_id, name="r", role=Role.reviewer)
    with harness.database.tenant_session(harness.tenant_id) as session:
        decide_task(session, task_id=task.id, caller=reviewer, decision="yes", kicker=harness.kicker)
        session.commit()
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed", run.error
    assert run.state == {"seen": EVERY_KIND_END}
    return run_id


def test_every_kind_of_step_is_recorded_as_earlier_code_recorded_it(harness: Harness) -> None:
    run_id = walk_every_kind(harness)
    assert masked(history(harness, run_id)) == masked(json.loads(RECORDED.read_text()))


def test_a_history_recorded_by_earlier_code_replays_without_running_anything(harness: Harness) -> None:
    recorded = json.loads(RECORDED.read_text())
    run_id = harness.start("test.every-kind", Walk())
    with harness.database.tenant_session(harness.tenant_id) as session:
        for step in recorded:
            session.execute(
                text(
                    "INSERT INTO runtime_step (tenant_id, run_id, seq, name, kind, status, attempt, result, "
                    "error, started_at, finished_at) VALUES (:tenant, :run, :seq, :name, :kind, :status, "
                    ":attempt, CAST(:result AS jsonb), :error, now(), now())"
                ),
                {**step, "result": json.dumps(step["result"]), "tenant": harness.tenant_id, "run": run_id},
            )
        session.execute(
            text("UPDATE runtime_run SET next_seq = :next WHERE id = :r"),
            {"next": len(recorded), "r": run_id},
        )
        session.commit()
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed", run.error
    assert run.state == {"seen": EVERY_KIND_END}
    assert calls == {}  # every step came back from the record
    assert history(harness, run_id) == recorded
