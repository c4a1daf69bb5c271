"""A model step's streamed text as run events: each `model.delta` names its step and attempt, and
a `model.retry` withdraws what was streamed when the text will not be the answer (the attempt
failed, or its target failed mid-stream and the route falls back to the next). A client shows
the deltas since the step's last `model.retry`.

Written at once (`emit(now=True)`), so a client sees them while the call is under way.
"""

from __future__ import annotations

from quire.agent.events import AgentEventType
from quire.agent.messages import Delta
from quire.agent.routing import Attempt
from quire.runtime.context import RunContext


class DeltaStream:
    """The deltas of one attempt at a model step, and their withdrawal."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.seq = ctx.current_seq
        self.attempt = ctx.current_attempt or 1
        self.pending = False  # text streamed since the last withdrawal

    def delta(self, delta: Delta) -> None:
        if delta.text:
            self.pending = True
            data = {"text": delta.text, "seq": self.seq, "attempt": self.attempt}
            self.ctx.emit(AgentEventType.model_delta, data, now=True)

    def fallback(self, failed: Attempt) -> None:
        self.withdraw(failed.target, failed.error or failed.outcome)

    def withdraw(self, target: str | None, error: str) -> None:
        if not self.pending:
            return
        self.pending = False
        data = {"seq": self.seq, "attempt": self.attempt, "target": target, "error": error}
        self.ctx.emit(AgentEventType.model_retry, data, now=True)
