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
from quire.runtime.kicks import BACKGROUND_QUEUE, Kicker
from quire.runtime.sweeper import Sweeper


class LocalKicker(Kicker):
    """A Kicker whose kicks wait in memory for `drive`; background runs' kicks wait behind the rest."""

    def __init__(self) -> None:
        super().__init__(StubBroker())
        self.transactional = False
        self.pending: deque[tuple[uuid.UUID, int]] = deque()
        self.background: deque[tuple[uuid.UUID, int]] = deque()

    def kick(self, run_id: uuid.UUID, epoch: int, *, program: str, session: Session | None = None) -> None:
        self.send_now(self.message(run_id, epoch, program))

    def send_now(self, message: Any) -> None:
        run_id, epoch = message.args
        queue = self.background if message.queue_name == BACKGROUND_QUEUE else self.pending
        queue.append((uuid.UUID(run_id), epoch))

    def next_kick(self) -> tuple[uuid.UUID, int] | None:
        for queue in (self.pending, self.background):
            if queue:
                return queue.popleft()
        return None


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
    while advances < max_advances and not executor.handing_over.is_set():
        while (
            advances < max_advances
            and not executor.handing_over.is_set()  # a stopping worker takes no more kicks
            and (kick := kicker.next_kick()) is not None
        ):
            executor.advance(*kick)
            advances += 1
        if sweeper is None or time.monotonic() >= deadline:
            break
        sweeper.sweep_once()
        if not (kicker.pending or kicker.background):
            time.sleep(0.05)
    return advances
