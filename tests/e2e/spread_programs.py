"""A program that says which worker host ran it (loaded via QUIRE_PROGRAM_MODULES)."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from quire.runtime.context import RunContext
from quire.runtime.programs import program


class Where(BaseModel):
    host: str = ""
    pid: int = 0


def _here() -> dict[str, object]:
    time.sleep(0.3)  # long enough that one worker cannot take every run before the other starts
    return {"host": os.environ.get("SPREAD_TEST_HOST", "?"), "pid": os.getpid()}


@program("spread.where")
def where(ctx: RunContext, state: Where) -> Where:
    found = ctx.step("where", _here)
    state.host, state.pid = str(found["host"]), int(found["pid"])  # type: ignore[call-overload]
    return state
