"""What the runtime raises, and the exceptions programs raise to steer it."""

from __future__ import annotations

from quire.core.errors import Conflict, Forbidden, InternalError, InvalidRequest, NotFound, QuireError


class RuntimeFailure(QuireError):
    """Base class for runtime errors."""

    code = "runtime_error"


class RunNotFound(RuntimeFailure, NotFound):
    """No run with that id in the caller's tenant."""

    code = "run_not_found"


class TaskNotFound(RuntimeFailure, NotFound):
    code = "task_not_found"


class ProgramNotFound(RuntimeFailure, InvalidRequest):
    """No program of that name (or version) is registered."""

    code = "program_not_found"


class InvalidState(RuntimeFailure, InvalidRequest):
    """The state given to start a run does not fit its program's state model."""

    code = "invalid_state"


class RunFinished(RuntimeFailure, Conflict):
    """The run has ended; it takes no more signals or decisions."""

    code = "run_finished"


class RunNotRetryable(RuntimeFailure, Conflict):
    """The run cannot be retried as it stands (it is still going, say); the message says why."""

    code = "run_not_retryable"


class IdempotencyMismatch(RuntimeFailure, Conflict):
    """An idempotency key came back with another request than the one it started a run for."""

    code = "idempotency_mismatch"


class TaskAlreadyDecided(RuntimeFailure, Conflict):
    code = "task_already_decided"


class InvalidEvent(RuntimeFailure, Conflict):
    """A process refused an event; the message says why."""

    code = "invalid_event"


class EventForbidden(InvalidEvent, Forbidden):
    """A process refused an event because of who sent it: the transition needs another role."""

    code = "event_forbidden"


class InvalidProcess(RuntimeFailure, InternalError):
    """A process definition contradicts itself (unknown states, unreachable targets)."""

    code = "invalid_process"


# Raised inside programs and steps.


class StepFailed(RuntimeFailure):
    """A step failed for good: it raised a non-retryable error or ran out of attempts.

    `error_code` is the code of what the step raised (a QuireError's `code`), recorded with the
    step so that a replay raises the same: programs turn it into their run's end state."""

    code = "step_failed"

    def __init__(self, step: str, error: str, error_code: str | None = None) -> None:
        super().__init__(f"step {step!r} failed: {error}")
        self.step = step
        self.error = error
        self.error_code = error_code or "step_failed"


class RunFailed(Exception):
    """Raise in a program to end its run `failed` with a stable code and a message saying why.

    `state`, when given, is published as the run's final state (what it spent, how far it got).
    An uncaught StepFailed ends a run the same way, with the step's code."""

    def __init__(self, code: str, message: str, *, state: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.state = state


class NonRetryable(RuntimeFailure):
    """Raise (or subclass) in a step for an error that another attempt cannot fix."""

    code = "non_retryable"


class RetryAfter(RuntimeFailure):
    """Raise in a step when a service said "come back in N seconds": the run parks as throttled."""

    code = "retry_after"

    def __init__(self, seconds: float, reason: str = "throttled") -> None:
        super().__init__(f"{reason}; retry after {seconds:.1f} s")
        self.seconds = max(0.0, seconds)
        self.reason = reason


class NonDeterminism(RuntimeFailure):
    """A replay met a different step than the one recorded: the program changed unsafely."""

    code = "non_determinism"


# Control flow between a RunContext and the executor; never escape a worker.


class LeaseLost(Exception):
    """Another worker owns the run now; this one must stop without writing."""


class Suspend(Exception):
    """The run parks (waits, sleeps, yields its slice); the executor already stored why."""


class Cancelled(Exception):
    """The run was asked to stop."""


class HandOver(Exception):
    """This worker is stopping: the run goes back to the queue for another, at once."""


class Interrupted(Exception):
    """A call in flight was abandoned: the run was cancelled, moved, or its worker is stopping."""


# The codes a run's end says what happened with (runtime's own; programs add theirs).
WORKER_LOST = "worker_lost"
REPLAY_MISMATCH = "replay_mismatch"
DEADLINE_EXCEEDED = "deadline_exceeded"
INTERNAL = "internal"
