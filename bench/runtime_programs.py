"""Programs for bench/runtime.py, loaded by worker processes through QUIRE_PROGRAM_MODULES.

BENCH_CODE_VERSION=new installs the "new code" of bench.recover: the same program with a change
gated by ctx.patched, as a redeploy between a crash and the recovery would bring.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.programs import program


class Steps(BaseModel):
    steps: int = 10
    trail: list[str] = []


def noop() -> None:
    return None


@program("bench.steps")
def steps(ctx: RunContext, state: Steps) -> Steps:
    for index in range(state.steps):
        ctx.step(f"s{index}", noop)
    return state


TIMINGS: list[float] = []  # milliseconds per ctx.step call, filled by bench.timed


@program("bench.timed")
def timed(ctx: RunContext, state: Steps) -> Steps:
    for index in range(state.steps):
        started = time.perf_counter()
        ctx.step(f"s{index}", noop)
        if not ctx.replaying:
            TIMINGS.append((time.perf_counter() - started) * 1000)
    return state


def long_step(marker: str) -> str:
    """Long the first time (the worker is killed during it), quick when re-run."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(60)
    return "done"


@program("bench.recover")
def recover(ctx: RunContext, state: Steps) -> Steps:
    state.trail.append(ctx.step("prepare", lambda: "prepared"))
    state.trail.append(ctx.step("long", long_step, os.environ["BENCH_LONG_STEP_MARKER"]))
    if os.environ.get("BENCH_CODE_VERSION") == "new" and ctx.patched("notify-after-long"):
        state.trail.append(ctx.step("notify", lambda: "notified"))
    state.trail.append(ctx.step("finish", lambda: "finished"))
    return state
