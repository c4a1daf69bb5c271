"""A parked run's wait in words: what it waits for, since when, until when.

The runtime records a wait as `waiting_for` (a kind, a signal's name, a step, a moment); people
read "waiting for a reviewer's decision since …", not `{"kind": "signal", "name": "event"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from quire.app.console.entries import mapping_of, moment, seconds
from quire.runtime.models import RunStatus

# A task offered to everyone who may answer it is a person's; a role above that is named.
NAMED_ROLES = frozenset({"contributor", "reviewer", "admin"})


class ParkedRun(Protocol):
    @property
    def status(self) -> RunStatus: ...

    @property
    def waiting_for(self) -> dict[str, Any] | None: ...

    @property
    def updated_at(self) -> datetime: ...

    @property
    def state(self) -> dict[str, Any] | None: ...


class OpenTask(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def due_at(self) -> datetime | None: ...


def decider(role: str) -> str:
    """Whose decision a task waits for: "a reviewer's", "an admin's", "a person's"."""
    if role not in NAMED_ROLES:
        return "a person's"
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}'s"


def _since(moment_: datetime, now: datetime | None) -> str:
    text = f"since {moment(moment_)}"
    if now is not None and now >= moment_:
        text += f" ({seconds((now - moment_).total_seconds())})"
    return text


def describe_wait(
    run: ParkedRun, open_tasks: Sequence[OpenTask] = (), *, now: datetime | None = None
) -> str | None:
    """What the run waits for, in a sentence; None when it is not waiting (running, ended)."""
    if run.status not in (
        RunStatus.waiting,
        RunStatus.sleeping,
        RunStatus.throttled,
        RunStatus.blocked,
        RunStatus.queued,
    ):
        return None
    waiting = mapping_of(run.waiting_for)
    kind = str(waiting.get("kind") or "")
    until = moment(waiting.get("until")) if waiting.get("until") else ""
    if open_tasks:
        task = min(open_tasks, key=lambda t: t.created_at)
        words = f"waiting for {decider(task.role)} decision {_since(task.created_at, now)}: “{task.title}”"
        if task.due_at is not None:
            words += f"; due {moment(task.due_at)}"
        return words
    if run.status == RunStatus.blocked or kind == "blocked":
        reason = waiting.get("reason") or "its program no longer matches its history"
        return f"blocked {_since(run.updated_at, now)}: {reason}; deploy a fix and retry it, or cancel it"
    if run.status == RunStatus.queued:
        return f"waiting for a worker {_since(run.updated_at, now)}"
    if kind == "signal":
        return _signal(run, str(waiting.get("name") or ""), until, now)
    if kind == "sleep":
        return f"waiting for a timer until {until}"
    if kind == "throttled":
        step = f" (step “{waiting['step']}”)" if waiting.get("step") else ""
        return f"waiting for a throttled provider until {until}{step}"
    if kind == "retry":
        return f"waiting to try step “{waiting.get('step')}” again until {until}, after it failed"
    if kind == "program":
        return f"waiting for a worker that has its program until {until}: {waiting.get('reason') or ''}"
    words = f"waiting {_since(run.updated_at, now)}"
    return f"{words}, until {until}" if until else words


def _signal(run: ParkedRun, name: str, until: str, now: datetime | None) -> str:
    since = _since(run.updated_at, now)
    if name == "event":  # a process between events, with no task open
        current = mapping_of(run.state).get("current")
        where = f"in state “{current}”, " if current else ""
        words = f"{where}waiting for its next event {since}"
        return f"{words}; a timer fires at {until}" if until else words
    if name.startswith("task:"):
        words = f"waiting for a person's decision {since}"
    elif name.startswith("child:"):
        words = f"waiting for child run {name.removeprefix('child:')} to end {since}"
    else:
        words = f"waiting for the signal “{name}” {since}"
    return f"{words}, or until {until}" if until else words
