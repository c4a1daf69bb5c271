"""RunContext: what a program sees of its run.

Execution model: replay. Each time a run resumes, its program function runs again from the
top. `ctx.step` gives back the recorded result of a step that completed before and runs only
steps that did not; a wait that is not over yet parks the run and ends the function by raising
Suspend, which holds no worker. See docs/runtime.md for why replay rather than an explicit
state machine, and for the rules a program must follow.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, get_type_hints

from pydantic import BaseModel, TypeAdapter

from quire.core.db import TenantSession, dumps
from quire.core.logcontext import log_context
from quire.core.models import Role
from quire.core.tracing import span
from quire.runtime import sql
from quire.runtime.errors import (
    Cancelled,
    LeaseLost,
    NonDeterminism,
    NonRetryable,
    RetryAfter,
    StepFailed,
    Suspend,
)
from quire.runtime.leases import ClaimedRun, RecordedStep
from quire.runtime.models import Owner, RunStatus, StepKind
from quire.runtime.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from quire.runtime.executor import Executor

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Steps of a cancel hook are numbered from here, apart from the program's own.
COMPENSATION_SEQ = 1_000_000


@functools.lru_cache(maxsize=1024)
def _result_adapter(function: Callable[..., Any]) -> TypeAdapter[Any] | None:
    try:
        annotation = get_type_hints(function).get("return")
    except Exception:  # lambdas, builtins, forward references that do not resolve
        return None
    if annotation is None or annotation is type(None):
        return None
    return TypeAdapter(annotation)


def encode_result(function: Callable[..., Any], value: Any) -> str:
    adapter = _result_adapter(function)
    if adapter is not None:
        return dumps(adapter.dump_python(value, mode="json"))
    return dumps(value)


def decode_result(function: Callable[..., Any], stored: Any) -> Any:
    adapter = _result_adapter(function)
    return adapter.validate_python(stored) if adapter is not None else stored


def utcnow() -> datetime:
    return datetime.now(UTC)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class Received:
    """A signal as a run took it: its payload and who sent it (sender None: Quire itself)."""

    payload: Any
    sender_id: uuid.UUID | None = None
    sender_role: str | None = None

    def record(self) -> dict[str, Any]:
        sender = {"id": str(self.sender_id), "role": self.sender_role} if self.sender_id else None
        return {"payload": self.payload, "timed_out": False, "sender": sender}

    @classmethod
    def from_record(cls, result: dict[str, Any]) -> Received | None:
        if result.get("timed_out"):
            return None
        sender = result.get("sender") or {}
        return cls(
            payload=result.get("payload"),
            sender_id=uuid.UUID(sender["id"]) if sender.get("id") else None,
            sender_role=sender.get("role"),
        )


class RunContext:
    """Durable steps, timers, signals, human tasks and events for one run."""

    def __init__(self, executor: Executor, run: ClaimedRun, history: list[RecordedStep]) -> None:
        self.executor = executor
        self.run = run
        self.run_id = run.id
        self.tenant_id = run.tenant_id
        self._history = {step.seq: step for step in history}
        self._frontier = max(self._history, default=-1) + 1
        # How far the run got before: past its recorded steps when it parked on a wait.
        pending = (run.waiting_for or {}).get("seq")
        self._reached = max(self._frontier, pending + 1 if isinstance(pending, int) else 0)
        self._seq = 0
        self._slice_started = time.monotonic()
        self._steps_in_slice = 0
        self._events: list[tuple[str, Any]] = []
        self._state: dict[str, Any] | None = None
        self._local = threading.local()  # the running step's session and seq, per thread
        self._lock = threading.RLock()  # parallel steps share the event and history buffers
        self._cancel_requested = run.cancel_requested

    # What a program may ask.

    @property
    def owner(self) -> Owner | None:
        """Who started the run (None: Quire itself): a program acts for them, with their role."""
        if self.run.started_by is None:
            return None
        return Owner(principal_id=self.run.started_by, role=Role(self.run.started_role or Role.reader))

    @property
    def replaying(self) -> bool:
        """True while the program re-walks ground it covered before (recorded or parked on)."""
        return self._seq < self._reached

    @property
    def session(self) -> TenantSession:
        """The transaction of the running step: writes here commit with the step, exactly once."""
        session: TenantSession | None = getattr(self._local, "session", None)
        if session is None:
            raise RuntimeError("ctx.session exists only inside a step function")
        return session

    @property
    def idempotency_key(self) -> str:
        """`run_id:seq` of the running step: give it to external services that deduplicate."""
        if self._current_seq is None:
            raise RuntimeError("ctx.idempotency_key exists only inside a step function")
        return f"{self.run_id}:{self._current_seq}"

    @property
    def _current_seq(self) -> int | None:
        seq: int | None = getattr(self._local, "seq", None)
        return seq

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def emit(self, type: str, data: Any = None, *, now: bool = False) -> None:
        """Add an event to the run's log.

        Events are written with the next commit, so each is recorded once; `now=True` writes
        at once in its own transaction (token streams), at the price of a repeat if the step
        that emitted it runs again after a crash.
        """
        if self.replaying:
            return
        if now:
            from quire.runtime.events import append_event

            with self.executor.database.tenant_session(self.tenant_id) as session:
                append_event(session, tenant_id=self.tenant_id, run_id=self.run_id, type=type, data=data)
                session.commit()
        else:
            self._events.append((type, data))

    def publish(self, state: BaseModel | dict[str, Any]) -> None:
        """Make `state` the run's visible state from the next commit on."""
        self._state = state.model_dump(mode="json") if isinstance(state, BaseModel) else state

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
        **kwargs: Any,
    ) -> T:
        """Run `function(*args, **kwargs)` once for this run, or return its recorded result.

        Inside it, `ctx.session` is a transaction that commits together with the step's record.
        Exceptions are retried by `retry` with back-off (the run parks between attempts);
        NonRetryable fails at once; RetryAfter parks the run as throttled. When attempts run
        out, StepFailed is raised into the program (and again, identically, on every replay).
        """
        seq = self._allocate(name, StepKind.step)
        recorded = self._history.get(seq)
        if recorded is not None:
            return self._replay(recorded, function)  # type: ignore[no-any-return]
        self._before_new_work()
        attempt = self.run.attempt + 1 if seq == self.run.next_seq else 1
        started = utcnow()
        with self.executor.database.tenant_session(self.tenant_id) as session:
            self._local.session, self._local.seq = session, seq
            try:
                with log_context(step=f"{seq}:{name}"), span(f"step {name}", seq=seq, attempt=attempt):
                    result = function(*args, **kwargs)
                encoded = encode_result(function, result)
            except (LeaseLost, Suspend, Cancelled):
                raise
            except RetryAfter as throttled:
                session.rollback()
                self._park_after_failure(
                    seq,
                    name,
                    attempt - 1,
                    throttled,
                    status=RunStatus.throttled,
                    delay=throttled.seconds,
                )
            except Exception as error:
                session.rollback()
                if isinstance(error, NonRetryable) or attempt >= retry.max_attempts:
                    self._commit_step(
                        session,
                        seq,
                        name,
                        StepKind.step,
                        attempt,
                        None,
                        started,
                        error=_describe(error),
                    )
                    session.commit()
                    raise StepFailed(name, _describe(error)) from error
                self._park_after_failure(
                    seq, name, attempt, error, status=RunStatus.sleeping, delay=retry.delay(attempt)
                )
            finally:
                self._local.session, self._local.seq = None, None
            self._commit_step(session, seq, name, StepKind.step, attempt, encoded, started)
            session.commit()
        self._steps_in_slice += 1
        return result

    def parallel(
        self,
        calls: Sequence[tuple[str, Callable[..., Any], tuple[Any, ...]]],
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_workers: int = 4,
    ) -> list[Any]:
        """Run several steps at once; each is recorded on its own, like `step`.

        Returns one entry per call, in order: its result, or the StepFailed it ended with (the
        caller decides what a failure means). Retries back off inside the worker here, since
        the other calls are running; a RetryAfter parks the whole run once the others are done,
        and only the throttled calls run again.
        """
        seqs = [self._allocate(name, StepKind.step) for name, _, _ in calls]
        results: list[Any] = [None] * len(calls)
        missing = []
        for index, (seq, (_, function, _)) in enumerate(zip(seqs, calls, strict=True)):
            recorded = self._history.get(seq)
            if recorded is None:
                missing.append(index)
                continue
            try:
                results[index] = self._replay(recorded, function)
            except StepFailed as failure:
                results[index] = failure
        if not missing:
            return results
        self._before_new_work()
        throttled: list[RetryAfter] = []
        with ThreadPoolExecutor(max_workers=min(max_workers, len(missing))) as pool:
            futures = {
                index: pool.submit(
                    self._run_inline, seqs[index], calls[index][0], calls[index][1], calls[index][2], retry
                )
                for index in missing
            }
        for index, future in futures.items():
            outcome = future.result()  # LeaseLost, Suspend and Cancelled propagate from here
            if isinstance(outcome, RetryAfter):
                throttled.append(outcome)
            else:
                results[index] = outcome
        self._steps_in_slice += len(missing)
        if throttled:
            worst = max(throttled, key=lambda t: t.seconds)
            first = min(i for i in missing if isinstance(futures[i].result(), RetryAfter))
            self._park_after_failure(
                seqs[first], calls[first][0], 0, worst, status=RunStatus.throttled, delay=worst.seconds
            )
        return results

    def _run_inline(
        self, seq: int, name: str, function: Callable[..., Any], args: tuple[Any, ...], retry: RetryPolicy
    ) -> Any:
        """One step of `parallel`, in a worker thread: committed, failed for good, or throttled."""
        attempt = 0
        while True:
            attempt += 1
            started = utcnow()
            with self.executor.database.tenant_session(self.tenant_id) as session:
                self._local.session, self._local.seq = session, seq
                try:
                    result = function(*args)
                    encoded = encode_result(function, result)
                except (LeaseLost, Suspend, Cancelled):
                    raise
                except RetryAfter as throttled:
                    session.rollback()
                    return throttled
                except Exception as error:
                    session.rollback()
                    if isinstance(error, NonRetryable) or attempt >= retry.max_attempts:
                        with self._lock:
                            self._commit_step(
                                session,
                                seq,
                                name,
                                StepKind.step,
                                attempt,
                                None,
                                started,
                                error=_describe(error),
                            )
                        session.commit()
                        return StepFailed(name, _describe(error))
                    time.sleep(min(retry.delay(attempt), 5.0))
                    continue
                finally:
                    self._local.session, self._local.seq = None, None
                with self._lock:
                    self._commit_step(session, seq, name, StepKind.step, attempt, encoded, started)
                session.commit()
                return result

    def sleep(self, duration: float | timedelta) -> None:
        """Wait `duration` (seconds or a timedelta) without holding a worker."""
        seq = self._peek_seq()
        until = self._deadline(seq, "sleep", _seconds(duration))
        self.sleep_until(until if until is not None else utcnow())

    def sleep_until(self, moment: datetime) -> None:
        """Wait until `moment` (timezone-aware) without holding a worker."""
        seq = self._allocate("sleep", StepKind.sleep)
        if seq in self._history:
            return
        self._before_new_work(counts=False)
        waiting = self.run.waiting_for or {}
        if waiting.get("seq") == seq and waiting.get("kind") == "sleep":
            moment = datetime.fromisoformat(waiting["until"])
        started = utcnow()
        with self._locked() as session:
            if utcnow() >= moment:
                self._commit_step(session, seq, "sleep", StepKind.sleep, 1, dumps({"until": moment}), started)
                session.commit()
                return
            self._park(
                session,
                status=RunStatus.sleeping,
                wake_at=moment,
                waiting_for={"kind": "sleep", "seq": seq, "until": moment.isoformat()},
                event=("run.sleeping", {"until": moment.isoformat(), "seq": seq}),
            )

    def wait_for_signal(self, name: str, *, timeout: float | timedelta | None = None) -> Any:
        """Wait for the next signal called `name` and return its payload (None on timeout).

        A signal sent before the run gets here is kept and returned at once.
        """
        received = self.receive(name, timeout=timeout)
        return None if received is None else received.payload

    def receive(self, name: str, *, timeout: float | timedelta | None = None) -> Received | None:
        """`wait_for_signal`, with who sent the signal (None on timeout)."""
        seq = self._allocate(f"signal:{name}", StepKind.signal)
        recorded = self._history.get(seq)
        if recorded is not None:
            return Received.from_record(recorded.result or {})
        self._before_new_work(counts=False)
        deadline = self._deadline(seq, "signal", None if timeout is None else _seconds(timeout))
        started = utcnow()
        with self._locked() as session:
            signal = session.execute(sql.NEXT_SIGNAL, {"run_id": self.run_id, "name": name}).first()
            if signal is not None:
                session.execute(sql.CONSUME_SIGNAL, {"id": signal[0], "seq": seq})
                received = Received(payload=signal[1], sender_id=signal[2], sender_role=signal[3])
                result = received.record()
                self._commit_step(session, seq, f"signal:{name}", StepKind.signal, 1, dumps(result), started)
                session.commit()
                return received
            if deadline is not None and utcnow() >= deadline:
                result = {"payload": None, "timed_out": True}
                self._commit_step(session, seq, f"signal:{name}", StepKind.signal, 1, dumps(result), started)
                session.commit()
                return None
            waiting: dict[str, Any] = {"kind": "signal", "name": name, "seq": seq}
            if deadline is not None:
                waiting["until"] = deadline.isoformat()
            self._park(
                session,
                status=RunStatus.waiting,
                wake_at=deadline,
                waiting_for=waiting,
                event=("run.waiting", {"signal": name, "until": waiting.get("until")}),
            )

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
    ) -> dict[str, Any]:
        """Ask a person (of `role`, or `assignee`) to decide; wait for it, holding no worker.

        Returns the decision: `{"decision", "comment", "data", "decided_by", "task_id"}`. When
        `due` passes undecided and `escalate_to` is set, the task moves to that role once.
        """
        task_id = self.create_task(
            title,
            role=role,
            payload=payload,
            options=options,
            due=due,
            escalate_to=escalate_to,
            assignee=assignee,
        )
        signal = f"task:{task_id}"
        decision = self.wait_for_signal(signal, timeout=due) if due else self.wait_for_signal(signal)
        if decision is None:  # due passed undecided
            if escalate_to is not None:
                from quire.runtime.tasks import escalate_task

                self.step(
                    "escalate",
                    lambda: escalate_task(self.session, task_id=task_id, role=escalate_to, due=due),
                )
            decision = self.wait_for_signal(signal)
        return dict(decision or {})

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
        from quire.runtime.tasks import open_task

        def create() -> uuid.UUID:
            return open_task(
                self.session,
                tenant_id=self.tenant_id,
                run_id=self.run_id,
                seq=self._current_seq or 0,
                title=title,
                role=role,
                payload=payload,
                options=options,
                due=due,
                escalate_to=escalate_to,
                assignee=assignee,
                signal_name=signal_name,
                decided_through=decided_through,
            )

        return self.step(f"task:{title}", create)

    def patched(self, name: str) -> bool:
        """True for runs that reach this point on code with the change called `name`.

        Runs started before the change replay their recorded history, which lacks the marker,
        and get False, so they finish on the old path.
        """
        seq = self._seq
        recorded = self._history.get(seq)
        if recorded is not None and recorded.kind == StepKind.patch and recorded.name == f"patch:{name}":
            self._seq += 1
            return True
        if seq < self._reached:
            return False  # old code went past this point without the change
        self._seq += 1
        started = utcnow()
        with self._locked() as session:
            self._commit_step(session, seq, f"patch:{name}", StepKind.patch, 1, "true", started)
            session.commit()
        return True

    def start_child(
        self, program: str, state: BaseModel | dict[str, Any], *, version: int | None = None
    ) -> uuid.UUID:
        """Start another program as this run's child (once); returns the child's run id."""
        from quire.runtime.service import create_run

        def start() -> uuid.UUID:
            child, _ = create_run(
                self.session,
                program=program,
                state=state,
                version=version,
                parent_id=self.run_id,
                idempotency_key=f"child:{self.run_id}:{self._current_seq}",
                kicker=self.executor.kicker,
                owner=self.owner,
            )
            return child.id

        return self.step(f"child:{program}", start)

    def wait_for_child(self, child_id: uuid.UUID) -> dict[str, Any]:
        """Wait for a child run to end: `{"status", "state", "error"}`."""
        return dict(self.wait_for_signal(f"child:{child_id}") or {})

    # Internals.

    def enter_compensation(self) -> None:
        """Run the cancel hook's steps in a numbering of their own, so they replay too."""
        self._seq = COMPENSATION_SEQ
        self._cancel_requested = False

    def _peek_seq(self) -> int:
        return self._seq

    def _allocate(self, name: str, kind: StepKind) -> int:
        seq = self._seq
        self._seq += 1
        recorded = self._history.get(seq)
        if recorded is not None and (recorded.name != name or recorded.kind != kind):
            raise NonDeterminism(
                f"step {seq} was recorded as {recorded.kind} {recorded.name!r}, but the program "
                f"now asks for {kind.value} {name!r} there; gate such changes with ctx.patched()"
            )
        return seq

    def _replay(self, recorded: RecordedStep, function: Callable[..., Any]) -> Any:
        if recorded.status == "failed":
            raise StepFailed(recorded.name, recorded.error or "failed")
        return decode_result(function, recorded.result)

    def _check_lease(self) -> None:
        if self.executor.leases.is_lost(self.run_id, self.run.epoch):
            raise LeaseLost(self.run_id)

    def _before_new_work(self, *, counts: bool = True) -> None:
        self._check_lease()
        if self._cancel_requested:
            raise Cancelled()
        if counts and (
            self._steps_in_slice >= self.executor.slice_steps
            or time.monotonic() - self._slice_started > self.executor.slice_seconds
        ):
            self._yield_slice()

    def _deadline(self, seq: int, kind: str, seconds: float | None) -> datetime | None:
        waiting = self.run.waiting_for or {}
        if waiting.get("seq") == seq and waiting.get("kind") == kind and waiting.get("until"):
            return datetime.fromisoformat(waiting["until"])
        if seconds is None:
            return None
        return utcnow() + timedelta(seconds=seconds)

    def _take_events(self, *extra: tuple[str, Any]) -> dict[str, Any]:
        with self._lock:
            events = [*self._events, *extra]
            self._events = []
        return {
            "event_types": [kind for kind, _ in events],
            "event_data": [dumps(data) for _, data in events],
        }

    def _take_state(self) -> str | None:
        with self._lock:
            state, self._state = self._state, None
        return None if state is None else dumps(state)

    @contextmanager
    def _locked(self) -> Iterator[TenantSession]:
        """A transaction that holds this run's row (fenced): signal senders wait for it."""
        with self.executor.database.tenant_session(self.tenant_id) as session:
            row = session.execute(sql.LOCK_FENCED, {"run_id": self.run_id, "epoch": self.run.epoch}).first()
            if row is None:
                raise LeaseLost(self.run_id)
            self._cancel_requested = bool(row[0])
            yield session

    def _commit_step(
        self,
        session: TenantSession,
        seq: int,
        name: str,
        kind: StepKind,
        attempt: int,
        result: str | None,
        started: datetime,
        *,
        error: str | None = None,
    ) -> None:
        finished = utcnow()
        event = (
            "step.failed" if error else "step.completed",
            {
                "seq": seq,
                "name": name,
                "kind": kind.value,
                "attempt": attempt,
                "ms": round((finished - started).total_seconds() * 1000, 2),
                **({"error": error} if error else {}),
            },
        )
        row = session.execute(
            sql.COMMIT_STEP,
            {
                "run_id": self.run_id,
                "epoch": self.run.epoch,
                "ttl": self.executor.lease_ttl,
                "seq": seq,
                "name": name,
                "kind": kind.value,
                "status": "failed" if error else "completed",
                "attempt": attempt,
                "result": result,
                "error": error,
                "started_at": started,
                # Not now(): that is when the transaction began, before the step's work ran.
                "finished_at": finished,
                "state": self._take_state(),
                **self._take_events(event),
            },
        ).first()
        if row is None:
            session.rollback()
            raise LeaseLost(self.run_id)
        self._cancel_requested = bool(row[0])
        self._history[seq] = RecordedStep(
            seq, name, kind.value, "failed" if error else "completed", None, error
        )
        self._frontier = max(self._frontier, seq + 1)
        self._reached = max(self._reached, seq + 1)

    def _park(
        self,
        session: TenantSession,
        *,
        status: RunStatus,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None,
        event: tuple[str, Any],
        attempt: int = 0,
        kick: bool = False,
    ) -> NoReturn:
        row = session.execute(
            sql.PARK,
            {
                "run_id": self.run_id,
                "epoch": self.run.epoch,
                "status": status.value,
                "wake_at": wake_at,
                "kicked": kick,
                "attempt": attempt,
                "waiting_for": dumps(waiting_for) if waiting_for is not None else None,
                "state": self._take_state(),
                **self._take_events(event),
            },
        ).first()
        if row is None:
            session.rollback()
            raise LeaseLost(self.run_id)
        if kick:
            self.executor.kicker.kick(self.run_id, self.run.epoch, program=self.run.program, session=session)
        session.commit()
        raise Suspend()

    def _park_after_failure(
        self,
        seq: int,
        name: str,
        attempt: int,
        error: BaseException,
        *,
        status: RunStatus,
        delay: float,
    ) -> None:
        wake_at = utcnow() + timedelta(seconds=delay)
        kind = "throttled" if status == RunStatus.throttled else "retry"
        with self._locked() as session:
            self._park(
                session,
                status=status,
                wake_at=wake_at,
                waiting_for={"kind": kind, "seq": seq, "step": name, "until": wake_at.isoformat()},
                attempt=attempt,
                event=(
                    f"step.{'throttled' if kind == 'throttled' else 'retrying'}",
                    {
                        "seq": seq,
                        "name": name,
                        "attempt": attempt,
                        "error": _describe(error),
                        "delay_s": round(delay, 3),
                    },
                ),
            )

    def _yield_slice(self) -> None:
        """End this message's bounded slice of work; another kick continues the run."""
        with self._locked() as session:
            self._park(
                session,
                status=RunStatus.queued,
                wake_at=utcnow(),
                waiting_for={"kind": "yield", "seq": self._seq - 1},
                attempt=self.run.attempt,
                event=("run.yielded", {"steps": self._steps_in_slice}),
                kick=True,
            )
