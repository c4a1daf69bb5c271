"""Where a program stands in its run's history: checked seqs, replay, fixed deadlines, attempts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quire.runtime.errors import NonDeterminism, StepFailed
from quire.runtime.history import COMPENSATION_SEQ, History
from quire.runtime.leases import ClaimedRun, RecordedStep
from quire.runtime.models import StepKind


def claimed(**overrides: Any) -> ClaimedRun:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "program": "test.history",
        "program_version": 1,
        "input": {},
        "state": None,
        "epoch": 1,
        "next_seq": 0,
        "attempt": 0,
        "recoveries": 0,
        "cancel_requested": False,
        "waiting_for": None,
        "parent_id": None,
        "created_at": datetime.now(UTC),
        "trace_parent": None,
    }
    return ClaimedRun(**{**fields, **overrides})


def recorded(
    seq: int, name: str, kind: str = "step", result: Any = None, error: str | None = None
) -> RecordedStep:
    return RecordedStep(seq, name, kind, "failed" if error else "completed", result, error)


def test_the_program_replays_until_it_passes_its_last_record() -> None:
    history = History(claimed(next_seq=2), [recorded(0, "a", result=1), recorded(1, "b", result=2)])
    assert history.replaying
    assert history.allocate("a", StepKind.step) == 0
    assert history.allocate("b", StepKind.step) == 1
    assert not history.replaying
    assert history.allocate("c", StepKind.step) == 2 and history.recorded(2) is None


def test_a_run_parked_on_a_wait_replays_up_to_and_including_the_wait() -> None:
    parked = {"kind": "signal", "name": "go", "seq": 1}
    history = History(claimed(next_seq=1, waiting_for=parked), [recorded(0, "a")])
    history.allocate("a", StepKind.step)
    assert history.replaying  # the wait at seq 1 was reached before, though not recorded
    history.allocate("signal:go", StepKind.signal)
    assert not history.replaying


def test_a_step_of_another_name_or_kind_where_one_was_recorded_is_refused() -> None:
    history = History(claimed(), [recorded(0, "fetch")])
    with pytest.raises(NonDeterminism, match=r"ctx\.patched"):
        history.allocate("download", StepKind.step)
    history = History(claimed(), [recorded(0, "fetch")])
    with pytest.raises(NonDeterminism):
        history.allocate("fetch", StepKind.sleep)


def test_a_recorded_failure_replays_as_the_same_step_failed() -> None:
    history = History(claimed(), [recorded(0, "parse", error="NonRetryable: encrypted")])
    step = history.recorded(0)
    assert step is not None
    with pytest.raises(StepFailed) as failure:
        history.replay(step, lambda: None)
    assert (failure.value.step, failure.value.error) == ("parse", "NonRetryable: encrypted")


def test_a_wait_deadline_is_fixed_the_first_time_the_run_parks_on_it() -> None:
    until = datetime(2030, 1, 1, tzinfo=UTC)
    parked = {"kind": "sleep", "seq": 3, "until": until.isoformat()}
    history = History(claimed(waiting_for=parked), [])
    assert history.deadline(3, "sleep", 5.0) == until
    fresh = history.deadline(4, "sleep", 5.0)
    assert fresh is not None and fresh - datetime.now(UTC) <= timedelta(seconds=5)
    assert history.deadline(4, "signal", None) is None


def test_failed_attempts_come_from_the_park_or_from_the_run() -> None:
    # Parked by one step (or by earlier code): the run's count is the step at next_seq's.
    single = History(claimed(next_seq=4, attempt=2, waiting_for={"kind": "retry", "seq": 4}), [])
    assert (single.failed_attempts(4), single.failed_attempts(5)) == (2, 0)
    # Parked by a parallel block: each step's count is in the park.
    parked = {"kind": "retry", "seq": 4, "attempts": {"4": 1, "5": 2}}
    several = History(claimed(next_seq=4, attempt=1, waiting_for=parked), [])
    assert (several.failed_attempts(4), several.failed_attempts(5), several.failed_attempts(6)) == (1, 2, 0)
    assert several.attempts_to_carry() == {"attempts": {"4": 1, "5": 2}}
    assert single.attempts_to_carry() == {}


def test_compensation_steps_are_numbered_apart() -> None:
    history = History(claimed(), [recorded(0, "a")])
    history.enter_compensation()
    assert history.allocate("undo", StepKind.step) == COMPENSATION_SEQ
