"""RunContext: what a program sees of its run.

Execution model: replay. Each time a run resumes, its program function runs again from the
top. `ctx.step` gives back the recorded result of a step that completed before and runs only
steps that did not; a wait that is not over yet parks the run and ends the function by raising
Suspend, which holds no worker. See docs/runtime.md for why replay rather than an explicit
state machine, and for the rules a program must follow.

The context is the front; behind it, `history.py` knows where the program stands, `journal.py`
writes the run's transitions, `steps.py` and `attempts.py` run steps, `waits.py` parks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from quire.core.db import TenantSession
from quire.core.models import Role, utcnow
from quire.runtime import steps, waits
from quire.runtime.errors import DEADLINE_EXCEEDED, Cancelled, HandOver, LeaseLost
from quire.runtime.events import RunEventType
from quire.runtime.history import History
from quire.runtime.journal import Journal
from quire.runtime.leases import ClaimedRun, RecordedStep
from quire.runtime.models import Owner, RunStatus
from quire.runtime.results import Received
from quire.runtime.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from quire.runtime.executor import Executor

T = TypeVar("T")


class RunContext:
    """Durable steps, timers, signals, human tasks and events for one run."""

    def __init__(self, executor: Executor, run: ClaimedRun, recorded: list[RecordedStep]) -> None:
        self.executor = executor
        self.run = run
        self.run_id = run.id
        self.tenant_id = run.tenant_id
        self.history = History(run, recorded)
        self.journal = Journal(
            database=executor.database,
            kicker=executor.kicker,
            run=run,
            history=self.history,
            lease_ttl=executor.lease_ttl,
        )
        self._slice_started = time.monotonic()
        self._steps_in_slice = 0
        self._local = threading.local()  # the running step's session and seq, per thread

    # What a program may ask.

    @property
    def services(self) -> Any:
        """What the process gives its programs (embedder, parser, model router, tools, …)."""
        if self.executor.services is None:
            raise RuntimeError("this executor was started without services")
        return self.executor.services

    @property
    def owner(self) -> Owner | None:
        """Who started the run (None: Quire itself): a program acts for them, with their role."""
        if self.run.started_by is None:
            return None
        return Owner(principal_id=self.run.started_by, role=Role(self.run.started_role or Role.reader))

    @property
    def replaying(self) -> bool:
        """True while the program re-walks ground it covered before (recorded or parked on)."""
        return self.history.replaying

    @property
    def session(self) -> TenantSession:
        """The transaction of the running step: writes here commit with the step, exactly once."""
        session: TenantSession | None = getattr(self._local, "session", None)
        if session is None:
            if self.current_seq is not None:
                raise RuntimeError(
                    "this step calls out (io=True) and holds no transaction while it does; "
                    "read or write in a short one of its own: `with ctx.transaction() as session`"
                )
            raise RuntimeError("ctx.session exists only inside a step function")
        return session

    @property
    def current_session(self) -> TenantSession | None:
        """The running step's transaction, or None (outside a step, or in one that calls out)."""
        session: TenantSession | None = getattr(self._local, "session", None)
        return session

    @contextmanager
    def transaction(self) -> Iterator[TenantSession]:
        """A short transaction of the run's tenant, apart from any step's (commit it yourself).

        For steps that call out: read before the call, write after it, hold nothing during it."""
        with self.executor.database.tenant_session(self.tenant_id) as session:
            yield session

    @property
    def worked_seconds(self) -> float:
        """Seconds workers have spent on this run so far; waits (people, timers, throttling) do
        not count. Read it only on new ground (not `replaying`): it is not part of the history."""
        return self.run.worked_seconds + (time.monotonic() - self._slice_started)

    @property
    def deadline_passed(self) -> bool:
        return self.run.cancel_reason == DEADLINE_EXCEEDED

    @property
    def idempotency_key(self) -> str:
        """`run_id:seq` of the running step: give it to external services that deduplicate."""
        if self.current_seq is None:
            raise RuntimeError("ctx.idempotency_key exists only inside a step function")
        return f"{self.run_id}:{self.current_seq}"

    @property
    def current_seq(self) -> int | None:
        """The seq of the running step (None outside a step function)."""
        seq: int | None = getattr(self._local, "seq", None)
        return seq

    _current_seq = current_seq  # the name quire.agent's built-in tools know it by

    @property
    def current_attempt(self) -> int | None:
        """Which attempt at the running step this is, from 1 (None outside a step function)."""
        attempt: int | None = getattr(self._local, "attempt", None)
        return attempt

    @property
    def cancel_requested(self) -> bool:
        return self.journal.cancel_requested

    def emit(self, type: str, data: Any = None, *, now: bool = False) -> None:
        """Add an event to the run's log.

        Events are written with the next commit, so each is recorded once; `now=True` writes
        at once in its own transaction (token streams), at the price of a repeat if the step
        that emitted it runs again after a crash.
        """
        if self.replaying:
            return
        if now:
            self.journal.emit_now(type, data)
        else:
            self.journal.emit(type, data)

    def publish(self, state: BaseModel | dict[str, Any]) -> None:
        """Make `state` the run's visible state from the next commit on."""
        self.journal.publish(state)

    def heartbeat(self) -> None:
        """Extend this run's lease now; raise LeaseLost if another worker has it."""
        self.executor.leases.extend()
        self._check_lease()

    def step(
        self,
        name: str,
        function: Callable[..., T],
        *args: Any,
        retry: RetryPolicy = DEFAULT_RETRY,
        io: bool = False,
        **kwargs: Any,
    ) -> T:
        """Run `function(*args, **kwargs)` once for this run, or return its recorded result.

        Inside it, `ctx.session` is a transaction that commits together with the step's record.
        Exceptions are retried by `retry` with back-off (the run parks between attempts);
        NonRetryable fails at once; RetryAfter parks the run as throttled. When attempts run
        out, StepFailed is raised into the program (and again, identically, on every replay).

        `io=True` for a step that calls out (a model, a remote tool): it holds no transaction
        while it waits, and a cancellation or a stopping worker interrupts it (see calls.py).
        """
        return steps.step(self, name, function, args, kwargs, retry=retry, io=io)

    def parallel(
        self,
        calls: Sequence[tuple[str, Callable[..., Any], tuple[Any, ...]]],
        *,
        retry: RetryPolicy | Sequence[RetryPolicy] = DEFAULT_RETRY,
        max_workers: int = 4,
        io: Sequence[bool] = (),
    ) -> list[Any]:
        """Run several steps at once; each is recorded on its own, like `step`.

        `retry` is one policy for every call, or one per call.

        Returns one entry per call, in order: its result, or the StepFailed it ended with (the
        caller decides what a failure means). A call that must be tried again (back-off, or
        RetryAfter) parks the whole run once the other calls are done; on waking, only the
        calls without a record run again. `io[i]` marks call i as calling out (see `step`).
        """
        return steps.parallel(self, calls, retry=retry, max_workers=max_workers, io=io)

    def sleep(self, duration: float | timedelta) -> None:
        """Wait `duration` (seconds or a timedelta) without holding a worker."""
        waits.sleep(self, duration)

    def sleep_until(self, moment: datetime) -> None:
        """Wait until `moment` (timezone-aware) without holding a worker."""
        waits.sleep_until(self, moment)

    def wait_for_signal(self, name: str, *, timeout: float | timedelta | None = None) -> Any:
        """Wait for the next signal called `name` and return its payload (None on timeout).

        A signal sent before the run gets here is kept and returned at once.
        """
        received = self.receive(name, timeout=timeout)
        return None if received is None else received.payload

    def receive(self, name: str, *, timeout: float | timedelta | None = None) -> Received | None:
        """`wait_for_signal`, with who sent the signal (None on timeout)."""
        return waits.receive(self, name, timeout=timeout)

    def human_task(
        self,
        title: str,
        *,
        role: Role = Role.reviewer,
        payload: Any = None,
        options: list[str] | None = None,
        due: timedelta | None = None,
        escalate_to: Role | None = None,
        assignee: uuid.UUID | None = None,
        give_up: bool = False,
    ) -> dict[str, Any]:
        """Ask a person (of `role`, or `assignee`) to decide; wait for it, holding no worker.

        Returns the decision: `{"decision", "comment", "data", "decided_by", "task_id"}`. When
        `due` passes undecided and `escalate_to` is set, the task moves to that role once; with
        `give_up` instead, the task is closed and `{"decision": None, "expired": True}` returned.
        """
        return waits.human_task(
            self,
            title,
            role=role,
            payload=payload,
            options=options,
            due=due,
            escalate_to=escalate_to,
            assignee=assignee,
            give_up=give_up,
        )

    def create_task(
        self,
        title: str,
        *,
        role: Role = Role.reviewer,
        payload: Any = None,
        options: list[str] | None = None,
        due: timedelta | None = None,
        escalate_to: Role | None = None,
        assignee: uuid.UUID | None = None,
        signal_name: str | None = None,
        decided_through: str | None = None,
    ) -> uuid.UUID:
        """Open a human task without waiting; its decision arrives as a signal.

        The signal is `task:<id>` unless `signal_name` says otherwise (the process engine uses
        one signal for every event). Escalation happens when the run wakes at `due`.
        """
        return waits.create_task(
            self,
            title,
            role=role,
            payload=payload,
            options=options,
            due=due,
            escalate_to=escalate_to,
            assignee=assignee,
            signal_name=signal_name,
            decided_through=decided_through,
        )

    def patched(self, name: str) -> bool:
        """True for runs that reach this point on code with the change called `name`.

        Runs started before the change replay their recorded history, which lacks the marker,
        and get False, so they finish on the old path.
        """
        return steps.patched(self, name)

    def start_child(
        self, program: str, state: BaseModel | dict[str, Any], *, version: int | None = None
    ) -> uuid.UUID:
        """Start another program as this run's child (once); returns the child's run id."""
        return waits.start_child(self, program, state, version=version)

    def wait_for_child(self, child_id: uuid.UUID) -> dict[str, Any]:
        """Wait for a child run to end: `{"status", "state", "error"}`."""
        return waits.wait_for_child(self, child_id)

    # The runtime's own: what steps, waits and the executor build on.

    def enter_compensation(self) -> None:
        """Run the cancel hook's steps in a numbering of their own, so they replay too."""
        self.history.enter_compensation()
        self.journal.cancel_requested = False

    @contextmanager
    def inside_step(self, session: TenantSession | None, seq: int, attempt: int = 1) -> Iterator[None]:
        """Make `session`, `seq` and `attempt` what `ctx.session`, `ctx.idempotency_key` and
        `ctx.current_attempt` give, in this thread (no session: a step that calls out)."""
        self._local.session, self._local.seq, self._local.attempt = session, seq, attempt
        try:
            yield
        finally:
            self._local.session, self._local.seq, self._local.attempt = None, None, None

    def before_new_work(self, *, counts: bool = True) -> None:
        """Stop if the run moved or was cancelled; yield the worker once the slice is used up
        (`counts`: work that counts towards the slice; waits end it anyway when they park)."""
        self._check_lease()
        if self.journal.cancel_requested:
            raise Cancelled()
        if self.executor.handing_over.is_set():
            raise HandOver()
        if counts and (
            self._steps_in_slice >= self.executor.slice_steps
            or time.monotonic() - self._slice_started > self.executor.slice_seconds
        ):
            self._yield_slice()

    def count_steps(self, steps: int) -> None:
        self._steps_in_slice += steps

    def _check_lease(self) -> None:
        if self.executor.leases.is_lost(self.run_id, self.run.epoch):
            raise LeaseLost(self.run_id)

    def _yield_slice(self) -> None:
        """End this message's bounded slice of work; another kick continues the run."""
        with self.journal.locked() as session:
            self.journal.park(
                session,
                status=RunStatus.queued,
                wake_at=utcnow(),
                waiting_for={
                    "kind": "yield",
                    "seq": self.history.seq - 1,
                    **self.history.attempts_to_carry(),
                },
                attempt=self.run.attempt,
                event=(RunEventType.run_yielded, {"steps": self._steps_in_slice}),
                kick=True,
            )
