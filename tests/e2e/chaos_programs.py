"""The program the chaos test runs on real worker processes (loaded via QUIRE_PROGRAM_MODULES)."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import psycopg
from pydantic import BaseModel

from quire.core.db import libpq_url
from quire.runtime.context import RunContext
from quire.runtime.programs import program

STEPS = 6
_local = threading.local()


class ChaosState(BaseModel):
    seed: int
    total: int = 0
    signal: Any = None


def _connection() -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(libpq_url(os.environ["QUIRE_DATABASE_URL"]), autocommit=True)
        _local.conn = conn
    return conn


def side_effect(run_id: str, index: int, seed: int) -> int:
    """An effect outside the step's transaction (like a call to another service)."""
    _connection().execute(
        "INSERT INTO chaos_effect (run_id, step, pid) VALUES (%s, %s, %s)",
        (run_id, index, os.getpid()),
    )
    time.sleep(random.uniform(0, 0.08))  # so that some kills land inside a step
    return (seed * (index + 3)) % 11


@program("chaos.workflow")
def workflow(ctx: RunContext, state: ChaosState) -> ChaosState:
    for index in range(STEPS):
        state.total += ctx.step(f"s{index}", side_effect, str(ctx.run_id), index, state.seed)
        if index == 1:
            ctx.sleep(0.4)
        if index == 3:
            state.signal = ctx.wait_for_signal("go")
    return state


def expected(seed: int) -> ChaosState:
    return ChaosState(
        seed=seed, total=sum((seed * (i + 3)) % 11 for i in range(STEPS)), signal={"seed": seed}
    )
