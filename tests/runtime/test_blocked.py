"""A replay that meets a different step than the one recorded parks the run as `blocked`, with
the mismatch shown; once the code is fixed, a retry resumes it with nothing lost."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.programs import program
from tests.harness import Harness

plan: dict[str, Any] = {"first": "a", "calls": 0}


class Trail(BaseModel):
    done: list[str] = []


def counted(name: str) -> str:
    plan["calls"] += 1
    return name


@program("test.changing")
def changing(ctx: RunContext, state: Trail) -> Trail:
    state.done.append(ctx.step(plan["first"], counted, plan["first"]))
    ctx.sleep(0.2)
    state.done.append(ctx.step("b", counted, "b"))
    return state


def test_a_replay_mismatch_blocks_the_run_and_a_retry_resumes_it(harness: Harness) -> None:
    plan.update(first="a", calls=0)
    run_id = harness.start("test.changing", Trail())
    harness.drive()
    assert harness.run(run_id).status == "sleeping"
    plan["first"] = "x"  # a deploy renames the step the parked run recorded first
    run = harness.drive_until(run_id, "blocked")  # the sleep ends and the replay meets "x"
    assert run.error_code == "replay_mismatch", run
    assert run.error is not None and "'a'" in run.error and "'x'" in run.error
    assert run.finished_at is None
    harness.drive(until=0.5)
    assert harness.run(run_id).status == "blocked"  # it stays put: no sweeper loop on it

    plan["first"] = "a"  # the fix is deployed; someone retries the run
    from quire.runtime.service import retry_run

    with harness.database.tenant_session(harness.tenant_id) as session:
        retry_run(session, run_id=run_id, kicker=harness.kicker)
        session.commit()
    run = harness.drive_until(run_id, "completed")
    assert run.error is None and run.error_code is None
    assert run.state is not None and run.state["done"] == ["a", "b"]
    assert plan["calls"] == 2  # step "a" ran once, before the block
