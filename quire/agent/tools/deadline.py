"""A tool call's start-to-close time limit.

A Python thread cannot be stopped from outside, so the call runs on a helper thread and the
step stops waiting for it when its time is up (ToolTimedOut; the step's retry policy decides
what follows). The helper sees the step's transaction, seq and attempt, as the step's own thread
would. An abandoned call's thread lingers until its function returns, and what it returns then
is dropped: a tool that waits on another service should give it `ToolContext.timeout` (imported
MCP tools do), so that the wait ends too, and should do its database work before the wait, not
after it (the step's transaction may be over by then).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from quire.agent.errors import ToolTimedOut
from quire.runtime.context import RunContext

T = TypeVar("T")


def call_within(ctx: RunContext, seconds: float, name: str, function: Callable[[], T]) -> T:
    """`function()`, or ToolTimedOut once `seconds` pass without its answer."""
    session, seq, attempt = ctx.current_session, ctx.current_seq, ctx.current_attempt
    if seq is None:
        raise RuntimeError("a tool call's time limit needs the step it runs in")
    answer: Future[T] = Future()
    context = contextvars.copy_context()  # the step's log context and trace

    def run() -> None:
        answer.set_running_or_notify_cancel()
        try:
            with ctx.inside_step(session, seq, attempt or 1):
                value = context.run(function)
        except BaseException as error:  # a worker's crash in the tool is the step's to raise
            answer.set_exception(error)
        else:
            answer.set_result(value)

    threading.Thread(target=run, name=f"quire-tool-{name}", daemon=True).start()
    try:
        return answer.result(timeout=seconds)
    except FutureTimeout:
        raise ToolTimedOut(f"{name} did not finish within {seconds:g} s") from None
