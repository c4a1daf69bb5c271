"""`ctx.current_attempt`: which attempt at the running step this is, for what the step emits
(the agent's streamed deltas carry it)."""

from __future__ import annotations

from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.programs import program
from quire.runtime.retry import RetryPolicy
from tests.harness import Harness

seen: list[int | None] = []


class Attempts(BaseModel):
    outside: int | None = 0


def note_attempt(ctx: RunContext) -> None:
    seen.append(ctx.current_attempt)
    if len(seen) < 3:
        raise ConnectionError("not yet")


@program("test.current-attempt")
def current_attempt_program(ctx: RunContext, state: Attempts) -> Attempts:
    fast = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1)
    ctx.step("flaky", note_attempt, ctx, retry=fast)
    state.outside = ctx.current_attempt
    return state


def test_a_step_knows_which_attempt_it_is(harness: Harness) -> None:
    seen.clear()
    run_id = harness.start("test.current-attempt", Attempts())
    harness.drive(until=3)
    run = harness.run(run_id)
    assert run.status == "completed"
    assert seen == [1, 2, 3]
    assert run.state == {"outside": None}  # between steps there is no attempt
