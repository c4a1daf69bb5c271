"""A run's timeline as the inspector shows it: its events in order, each told with its step's record.

The event log gives the order and the moments (waits, retries, throttling, recoveries, decisions);
the recorded steps give the substance: a model call's full response (`model:N`), a tool's output
(`tool:N:i:name`), a task, a signal's payload. Events that only repeat a step (model.call,
tool.call, tool.result, task.created) are folded into that step's entry; a fallback is told just
before the model call that followed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from quire.agent.events import AgentEventType
from quire.app.console.entries import (
    Clip,
    Entry,
    mapping_of,
    moment,
    pretty,
    seconds,
)
from quire.app.console.step_entries import MODEL_STEP, TOOL_STEP, StepEntries
from quire.app.console.waits import decider
from quire.runtime.events import RunEventType
from quire.runtime.models import HumanTask, RunEvent, RunPublic, StepPublic

# Events that only repeat what a step records: told as part of that step's entry.
FOLDED = {
    AgentEventType.model_call,
    AgentEventType.model_fallback,
    AgentEventType.model_delta,
    AgentEventType.model_retry,  # the step's retry or fallback entry tells it
    AgentEventType.tool_result,
    RunEventType.task_created,
}


class Timeline(StepEntries):
    """Builds the entries of one run; `build` returns them in the order they happened."""

    def __init__(
        self,
        run: RunPublic,
        events: Sequence[RunEvent],
        tasks: Iterable[HumanTask] = (),
        names: dict[str, str] | None = None,
    ) -> None:
        self.run = run
        self.events = events
        self.steps = {step.seq: step for step in run.steps}
        self.tasks = {str(task.id): task for task in tasks}
        self.names = names or {}
        self.requested: dict[str, dict[str, Any]] = {}  # call id -> the tool call a model asked for
        self.results: dict[str, dict[str, Any]] = {}  # call id -> the tool.result event's data
        self.tool_steps: dict[str, StepPublic] = {}  # call id -> the step that ran it
        self.entries: list[Entry] = []
        self.waiting_since: datetime | None = None
        # Each event type the inspector tells in words of its own; others get a generic entry.
        self.handlers: dict[str, Callable[[RunEvent, dict[str, Any]], None]] = {
            RunEventType.step_completed: self._on_step_completed,
            RunEventType.step_failed: self._on_step_completed,
            RunEventType.step_retrying: self._on_step_retrying,
            RunEventType.step_throttled: self._on_step_throttled,
            RunEventType.run_created: self._on_run_created,
            RunEventType.run_waiting: self._on_run_waiting,
            RunEventType.run_sleeping: self._on_run_sleeping,
            RunEventType.run_recovered: self._on_run_recovered,
            RunEventType.run_yielded: self._on_run_yielded,
            RunEventType.run_completed: self._on_run_completed,
            RunEventType.run_failed: self._on_run_failed,
            RunEventType.run_cancelled: self._on_run_cancelled,
            RunEventType.run_cancel_requested: self._on_run_cancel_requested,
            RunEventType.run_blocked: self._on_run_blocked,
            RunEventType.run_handed_over: self._on_run_handed_over,
            RunEventType.run_retried: self._on_run_retried,
            RunEventType.run_deadline_passed: self._on_run_deadline_passed,
            RunEventType.task_decided: self._on_task_decided,
            RunEventType.task_escalated: self._on_task_escalated,
            RunEventType.signal_received: self._on_signal_received,
            RunEventType.process_transition: self._on_process_transition,
            RunEventType.process_refused: self._on_process_refused,
            AgentEventType.tool_call: self._on_tool_call,
            AgentEventType.answer: self._on_answer,
            AgentEventType.answer_missing: self._on_answer_missing,
        }

    # Indexes over the whole run, before walking the events.

    def _index(self) -> None:
        for step in self.run.steps:
            if MODEL_STEP.match(step.name) and isinstance(step.result, dict):
                message = (step.result.get("completion") or {}).get("message") or {}
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict) and "id" in call:
                        self.requested.setdefault(str(call["id"]), call)
        for event in self.events:
            data = mapping_of(event.data)
            if event.type == "tool.call" and "id" in data:
                self.requested.setdefault(str(data["id"]), data)
            elif event.type == "tool.result" and "id" in data:
                self.results[str(data["id"])] = data
        taken: set[str] = set()
        for step in self.run.steps:
            if TOOL_STEP.match(step.name) and isinstance(step.result, dict) and "call_id" in step.result:
                self.tool_steps[str(step.result["call_id"])] = step
                taken.add(str(step.result["call_id"]))
        # A tool step that failed for good recorded no result: it ran the first call of its turn
        # with its tool's name that no other step answers.
        for step in self.run.steps:
            match = TOOL_STEP.match(step.name)
            if match is None or (isinstance(step.result, dict) and "call_id" in step.result):
                continue
            turn, name = int(match.group(1)), match.group(3)
            model = next((s for s in self.run.steps if s.name == f"model:{turn}"), None)
            message = ((model.result or {}).get("completion") or {}).get("message") or {} if model else {}
            for call in message.get("tool_calls") or []:
                call_id = str(call.get("id"))
                if call.get("name") == name and call_id not in taken:
                    self.tool_steps[call_id] = step
                    taken.add(call_id)
                    break

    def build(self) -> list[Entry]:
        self._index()
        for event in self.events:
            if event.type in FOLDED:
                continue
            handler = self.handlers.get(event.type)
            if handler is not None:
                handler(event, mapping_of(event.data))
            else:
                self._generic_event(event)
        return self.entries

    # Helpers.

    def _add(self, event: RunEvent, kind: str, title: str, **fields: Any) -> Entry:
        offset = (event.created_at - self.run.created_at).total_seconds()
        entry = Entry(kind=kind, title=title, at=event.created_at, offset=f"+{seconds(offset)}", **fields)
        self.entries.append(entry)
        return entry

    def _name(self, actor: Any) -> str:
        return self.names.get(str(actor), str(actor)) if actor else ""

    # Waits, retries, throttling, recoveries.

    def _on_run_waiting(self, event: RunEvent, data: dict[str, Any]) -> None:
        self.waiting_since = event.created_at
        signal = str(data.get("signal", ""))
        facts = [("signal", signal)]
        if data.get("until"):
            facts.append(("gives up at", moment(data["until"])))
        task = self._task_awaited(signal, event.created_at)
        if task is not None:
            title = f"Waiting for {decider(task.role)} decision"
            facts = [("task", task.title), *facts[1:]]
        elif signal.startswith("task:"):
            title = "Waiting for a person's decision"
        elif signal == "event":
            title = "Waiting for the process's next event"
            facts = facts[1:]
        else:
            title = f"Waiting for signal {signal}"
        self._add(event, "wait", title, tone="wait", facts=facts)

    def _task_awaited(self, signal: str, at: datetime) -> HumanTask | None:
        """The task open when the run parked on `signal`, whose decision comes as that signal."""
        awaited = [
            task
            for task in self.tasks.values()
            if task.signal_name == signal
            and task.created_at <= at
            and (task.decided_at is None or task.decided_at >= at)
            and task.status in ("open", "decided")
        ]
        return max(awaited, key=lambda task: task.created_at) if awaited else None

    def _on_run_sleeping(self, event: RunEvent, data: dict[str, Any]) -> None:
        self.waiting_since = event.created_at
        until = moment(data.get("until"))
        self._add(event, "wait", "Sleeping on a timer", tone="wait", facts=[("until", until)])

    def _on_step_retrying(self, event: RunEvent, data: dict[str, Any]) -> None:
        delay = float(data.get("delay_s") or 0)
        self._add(
            event,
            "retry",
            f"Retry: {data.get('name')} failed on attempt {data.get('attempt')}",
            tone="warn",
            facts=[
                ("attempt", str(data.get("attempt"))),
                ("next try in", seconds(delay)),
                ("at", moment(event.created_at + timedelta(seconds=delay))),
            ],
            text=str(data.get("error") or ""),
        )

    def _on_step_throttled(self, event: RunEvent, data: dict[str, Any]) -> None:
        delay = float(data.get("delay_s") or 0)
        self.waiting_since = event.created_at
        self._add(
            event,
            "throttle",
            f"Throttled: {data.get('name')} parked until the provider allows calls again",
            tone="warn",
            facts=[
                ("Retry-After", seconds(delay)),
                ("resumes at", moment(event.created_at + timedelta(seconds=delay))),
            ],
            text=str(data.get("error") or ""),
        )

    def _on_run_recovered(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(
            event,
            "recovery",
            "Recovered: the worker running this run was lost; another took it over",
            tone="warn",
            facts=[
                ("lost worker", str(data.get("lost_worker") or "?")),
                ("recoveries since the last step", str(data.get("recoveries", "?"))),
            ],
        )

    def _on_run_yielded(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(
            event,
            "run",
            f"Slice ended after {data.get('steps')} steps; a new message continues the run",
            tone="muted",
        )

    # Tasks and signals from outside.

    def _on_task_decided(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(
            event,
            "decision",
            f"Decided: {data.get('decision')}",
            tone="ok",
            facts=[("by", self._name(data.get("by")))],
            text=str(data.get("comment") or ""),
        )

    def _on_task_escalated(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(
            event,
            "task",
            f"Task escalated from {data.get('from')} to {data.get('to')}",
            tone="warn",
        )

    def _on_signal_received(self, event: RunEvent, data: dict[str, Any]) -> None:
        name = str(data.get("name", ""))
        if name.startswith("task:"):
            return  # the decision says it
        facts = [("key", str(data.get("key")))]
        self._add(event, "signal", f"Signal received: {name}", tone="info", facts=facts)

    # The run's own life.

    def _on_run_created(self, event: RunEvent, data: dict[str, Any]) -> None:
        entry = self._add(
            event,
            "run",
            f"Created: {data.get('program')} v{data.get('version')}",
            tone="info",
        )
        if data.get("parent_id"):
            entry.link = (f"/console/runs/{data['parent_id']}", "open the parent run")

    def _on_run_completed(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "run", "Completed", tone="ok")

    def _on_run_failed(self, event: RunEvent, data: dict[str, Any]) -> None:
        code = data.get("code") or self.run.error_code
        text = str(data.get("error") or self.run.error or "")
        self._add(event, "run", "Failed", tone="bad", text=f"{code}: {text}" if code else text)

    def _on_run_blocked(self, event: RunEvent, data: dict[str, Any]) -> None:
        text = f"Its program no longer matches its history: {data.get('error') or ''}"
        self._add(event, "run", "Blocked", tone="bad", text=text)

    def _on_run_handed_over(self, event: RunEvent, data: dict[str, Any]) -> None:
        text = f"Its worker ({data.get('worker') or '?'}) was stopping; another takes it (not a recovery)."
        self._add(event, "run", "Handed over", tone="warn", text=text)

    def _on_run_retried(self, event: RunEvent, data: dict[str, Any]) -> None:
        again = ", ".join(str(step.get("name")) for step in data.get("steps_again") or []) or "none"
        text = f"Was {data.get('was')} ({data.get('code') or 'no code'}); steps run again: {again}."
        self._add(event, "run", "Retried", tone="warn", text=text)

    def _on_run_deadline_passed(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "run", "Deadline passed", tone="bad", text=f"Deadline: {data.get('deadline') or ''}")

    def _on_run_cancelled(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "run", "Cancelled", tone="bad", text=str(data.get("error") or ""))

    def _on_run_cancel_requested(self, event: RunEvent, data: dict[str, Any]) -> None:
        reason = data.get("reason") or ("its parent was cancelled" if data.get("by") == "parent" else "")
        self._add(event, "run", "Cancellation requested", tone="warn", text=str(reason or ""))

    def _on_answer(self, event: RunEvent, data: dict[str, Any]) -> None:
        # Citations are objects with their number; runs answered before then hold the numbers.
        refs = [c["n"] if isinstance(c, dict) else c for c in data.get("citations") or []]
        facts = [("cites", " ".join(f"[{n}]" for n in refs))] if refs else []
        self._add(event, "answer", "Answered", tone="ok", facts=facts)

    def _on_answer_missing(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "answer", "Ended without an answer", tone="warn", text=str(data.get("reason") or ""))

    def _on_process_transition(self, event: RunEvent, data: dict[str, Any]) -> None:
        fired = mapping_of(data.get("event"))
        facts = [("event", str(fired.get("name", "")))]
        if fired.get("actor"):
            facts.append(("actor", self._name(fired["actor"])))
        title = f"Transition: {data.get('source')} → {data.get('target')}"
        entry = self._add(event, "transition", title, tone="ok", facts=facts)
        if data.get("data") is not None:
            entry.output = Clip.of(pretty(data["data"]))

    def _on_process_refused(self, event: RunEvent, data: dict[str, Any]) -> None:
        fired = mapping_of(data.get("event"))
        self._add(
            event,
            "transition",
            f"Event refused: {fired.get('name', '')}",
            tone="warn",
            text=str(data.get("reason") or ""),
        )

    def _generic_event(self, event: RunEvent) -> None:
        entry = self._add(event, "event", event.type, tone="info")
        if event.data is not None:
            entry.output = Clip.of(pretty(event.data))


def build_timeline(
    run: RunPublic,
    events: Sequence[RunEvent],
    tasks: Iterable[HumanTask] = (),
    names: dict[str, str] | None = None,
) -> list[Entry]:
    """The run's entries in the order they happened."""
    return Timeline(run, events, tasks, names).build()


def actors_of(events: Iterable[RunEvent], tasks: Iterable[HumanTask]) -> list[str]:
    """Principal ids the timeline names, to look their names up."""
    found: list[str] = []
    for event in events:
        data = mapping_of(event.data)
        if event.type == "task.decided" and data.get("by"):
            found.append(str(data["by"]))
        fired = mapping_of(data.get("event"))
        if fired and fired.get("actor"):
            found.append(str(fired["actor"]))
    for task in tasks:
        for who in (task.assignee, task.decided_by):
            if isinstance(who, uuid.UUID):
                found.append(str(who))
    return found
