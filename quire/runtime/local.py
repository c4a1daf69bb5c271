"""Running programs inside one process, without a broker: for tests and one-shot tools.

`LocalKicker` keeps kicks in a list; `drive` feeds them to an Executor until none are left
(and, with a sweeper, until no timer is due within `settle` seconds).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

from dramatiq.brokers.stub import StubBroker
from sqlalchemy.orm import Session

from quire.runtime.executor import Executor
from quire.runtime.kicks import Kicker
from quire.runtime.sweeper import Sweeper


class LocalKicker(Kicker):
    """A Kicker whose kicks wait in memory for `drive`."""

    def __init__(self) -> None:
        super().__init__(StubBroker())
        self.transactional = False
        self.pending: deque[tuple[uuid.UUID, int]] = deque()

    def kick(self, run_id: uuid.UUID, epoch: int, *, session: Session | None = None) -> None:
        self.pending.append((run_id, epoch))

    def send_now(self, message: Any) -> None:
        run_id, epoch = message.args
        self.pending.append((uuid.UUID(run_id), epoch))


def drive(
    executor: Executor,
    kicker: LocalKicker,
    *,
    sweeper: Sweeper | None = None,
    until: float = 0.0,
    max_advances: int = 10_000,
) -> int:
    """Advance runs until no kick is pending; with a sweeper, keep sweeping for `until` seconds."""
    advances = 0
    deadline = time.monotonic() + until
    while advances < max_advances:
        while kicker.pending and advances < max_advances:
            run_id, epoch = kicker.pending.popleft()
            executor.advance(run_id, epoch)
            advances += 1
        if sweeper is None or time.monotonic() >= deadline:
            break
        sweeper.sweep_once()
        if not kicker.pending:
            time.sleep(0.05)
    return advances
