"""A run's timeline as the inspector shows it: its events in order, each told with its step's record.

The event log gives the order and the moments (waits, retries, throttling, recoveries, decisions);
the recorded steps give the substance: a model call's full response (`model:N`), a tool's output
(`tool:N:i:name`), a task, a signal's payload. Events that only repeat a step (model.call,
tool.call, tool.result, task.created) are folded into that step's entry; a fallback is told just
before the model call that followed it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from quire.agent.routing import ModelCall
from quire.app.console.charts import dollars
from quire.runtime.models import HumanTask, RunEvent, RunPublic, StepPublic

CLIP_CHARS = 600  # of a long output shown before "show all"
CLIP_LINES = 8
MAX_CHARS = 200_000  # of a long output shown at all
MODEL_STEP = re.compile(r"^model:(\d+)$")
TOOL_STEP = re.compile(r"^tool:(\d+):(\d+):(.+)$")
FOLDED = {"model.call", "model.fallback", "model.delta", "tool.result", "task.created"}


@dataclass(frozen=True)
class Clip:
    """A long text: its head, shown at once, and the whole, behind "show all"."""

    head: str
    full: str
    size: int

    @property
    def clipped(self) -> bool:
        return self.head != self.full

    @classmethod
    def of(cls, text: str, limit: int = CLIP_CHARS, lines: int = CLIP_LINES) -> Clip:
        cut = min(len(text), limit)
        newlines = [i for i, char in enumerate(text[:cut]) if char == "\n"]
        if len(newlines) >= lines:
            cut = newlines[lines - 1]
        head = text if cut >= len(text) else text[:cut].rstrip() + " …"
        full = text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"\n… ({len(text) - MAX_CHARS:,} more)"
        return cls(head=head, full=full, size=len(text))


@dataclass(frozen=True)
class RequestedCall:
    """A tool call a model asked for, as its entry lists it."""

    id: str
    name: str
    arguments: str
    problem: str | None
    anchor: str


@dataclass
class Entry:
    kind: str  # model, tool, fallback, retry, throttle, wait, task, decision, resume, recovery, run, step, …
    title: str
    at: datetime
    offset: str  # since the run was created
    tone: str = "info"  # ok, bad, warn, wait, info, muted
    facts: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""  # prose shown whole: the assistant's text, an error, a comment
    output: Clip | None = None  # a tool's output or a step's result
    arguments: str = ""  # a tool call's arguments, as JSON
    calls: list[RequestedCall] = field(default_factory=list)
    link: tuple[str, str] | None = None  # (url, label)
    anchor: str = ""
    seq: int | None = None


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def anchor_for(call_id: str) -> str:
    return "call-" + re.sub(r"[^A-Za-z0-9_-]", "_", call_id)


def seconds(value: float) -> str:
    """12 ms, 3.2 s, 4 min 5 s, 2 h 5 min: a span as a person reads it."""
    if value < 0:
        value = 0.0
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if value < 86400:
        hours, rest = divmod(round(value) // 60, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, rest = divmod(round(value) // 3600, 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


def tokens(value: int) -> str:
    return f"{value:,}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return ""


class Timeline:
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

    # Indexes over the whole run, before walking the events.

    def _index(self) -> None:
        for step in self.run.steps:
            if MODEL_STEP.match(step.name) and isinstance(step.result, dict):
                message = (step.result.get("completion") or {}).get("message") or {}
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict) and "id" in call:
                        self.requested.setdefault(str(call["id"]), call)
        for event in self.events:
            data = _mapping(event.data)
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
            handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
            if handler is not None:
                handler(event, _mapping(event.data))
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

    # Steps.

    def _on_step_completed(self, event: RunEvent, data: dict[str, Any]) -> None:
        step = self.steps.get(data.get("seq", -1))
        name = str(data.get("name", ""))
        if step is None:
            self._add(event, "step", f"Step {data.get('seq')}: {name}", tone="muted", seq=data.get("seq"))
            return
        if MODEL_STEP.match(name):
            self._model(event, step, int(MODEL_STEP.match(name).group(1)))  # type: ignore[union-attr]
        elif TOOL_STEP.match(name):
            self._tool_step(event, step)
        elif step.kind == "task" or (step.name.startswith("task:") and str(step.result) in self.tasks):
            self._task(event, step)
        elif step.kind == "signal":
            self._resume(event, step)
        elif step.kind == "sleep":
            self._timer(event, step)
        elif step.kind == "child":
            self._child(event, step)
        else:
            self._step(event, step)

    _on_step_failed = _on_step_completed

    def _step_facts(self, step: StepPublic) -> list[tuple[str, str]]:
        facts = [("step", f"{step.seq} ({step.kind})")]
        took = (step.finished_at - step.started_at).total_seconds()
        facts.append(("took", seconds(took)))
        if step.attempt > 1:
            facts.append(("attempt", str(step.attempt)))
        return facts

    def _step(self, event: RunEvent, step: StepPublic) -> None:
        failed = step.status == "failed"
        entry = self._add(
            event,
            "step",
            f"Step: {step.name}" + (" failed" if failed else ""),
            tone="bad" if failed else "ok",
            facts=self._step_facts(step),
            text=step.error or "",
            seq=step.seq,
            anchor=f"step-{step.seq}",
        )
        if step.result is not None:
            entry.output = Clip.of(step.result if isinstance(step.result, str) else pretty(step.result))

    def _model(self, event: RunEvent, step: StepPublic, turn: int) -> None:
        if step.status == "failed" or not isinstance(step.result, dict):
            self._add(
                event,
                "model",
                f"Model call, turn {turn}, failed",
                tone="bad",
                facts=self._step_facts(step),
                text=step.error or "",
                seq=step.seq,
                anchor=f"step-{step.seq}",
            )
            return
        try:
            call = ModelCall.model_validate(step.result)
        except ValidationError:
            self._step(event, step)
            return
        for attempt in call.attempts:
            if attempt.outcome == "ok":
                continue
            facts = [("target", attempt.target), ("outcome", attempt.outcome.replace("_", " "))]
            if attempt.retry_after is not None:
                facts.append(("Retry-After", seconds(attempt.retry_after)))
            self._add(
                event,
                "fallback",
                f"Fallback: {attempt.target} {attempt.outcome.replace('_', ' ')}, tried the next target",
                tone="warn",
                facts=facts,
                text=attempt.error or "",
            )
        usage = call.completion.usage
        facts = [
            ("target", call.target),
            ("model", call.model),
            ("tokens in", tokens(usage.input_tokens)),
            ("cached", tokens(usage.cached_input_tokens)),
            ("out", tokens(usage.output_tokens)),
        ]
        if usage.reasoning_tokens:
            facts.append(("reasoning", tokens(usage.reasoning_tokens)))
        facts += [
            ("cost", dollars(call.cost_usd)),
            ("latency", seconds(call.latency_ms / 1000)),
            ("finish", call.completion.finish_reason.value.replace("_", " ")),
        ]
        if step.attempt > 1:
            facts.append(("attempt", str(step.attempt)))
        message = call.completion.message
        calls = [
            RequestedCall(
                id=c.id,
                name=c.name,
                arguments=c.raw_arguments if c.parse_error and c.raw_arguments else pretty(c.arguments),
                problem=c.parse_error,
                anchor=anchor_for(c.id),
            )
            for c in message.tool_calls
        ]
        asked = f"asked for {len(calls)} tool call{'s' if len(calls) != 1 else ''}" if calls else "answered"
        self._add(
            event,
            "model",
            f"Model call, turn {turn}: {asked}",
            tone="ok",
            facts=facts,
            text=message.content,
            calls=calls,
            seq=step.seq,
            anchor=f"step-{step.seq}",
        )

    def _tool_step(self, event: RunEvent, step: StepPublic) -> None:
        call_id = next((cid for cid, s in self.tool_steps.items() if s.seq == step.seq), "")
        name = TOOL_STEP.match(step.name).group(3)  # type: ignore[union-attr]
        requested = self.requested.get(call_id, {})
        result = step.result if isinstance(step.result, dict) else {}
        reported = self.results.get(call_id, {})
        failed = step.status == "failed"
        is_error = failed or bool(result.get("is_error"))
        facts = [("call", call_id or "?")]
        facts += self._step_facts(step)[1:]
        sources = reported.get("sources") or []
        if sources:
            facts.append(("sources", " ".join(f"[{n}]" for n in sources)))
        entry = self._add(
            event,
            "tool",
            f"Tool call: {name}" + (" failed" if failed else " returned an error" if is_error else ""),
            tone="bad" if is_error else "ok",
            facts=facts,
            text=step.error or "",
            arguments=pretty(requested.get("arguments", {})) if requested else "",
            seq=step.seq,
            anchor=anchor_for(call_id) if call_id else f"step-{step.seq}",
        )
        content = result.get("content")
        if isinstance(content, str):
            entry.output = Clip.of(content)

    def _on_tool_call(self, event: RunEvent, data: dict[str, Any]) -> None:
        call_id = str(data.get("id", ""))
        if call_id in self.tool_steps:
            return  # told with the step that ran it
        name = str(data.get("name", ""))
        arguments = pretty(data.get("arguments", {}))
        if name == "ask_human":
            self._add(
                event,
                "tool",
                "Tool call: ask_human (asks a person; the run waits for the answer)",
                tone="wait",
                facts=[("call", call_id)],
                arguments=arguments,
                anchor=anchor_for(call_id),
            )
            return
        self._add(
            event,
            "tool",
            f"Tool call not run: {name}",
            tone="warn",
            facts=[("call", call_id)],
            text=(
                "The call was invalid, named an unknown tool, needed another role, or a person declined "
                "it; the error went back to the model as the call's result."
            ),
            arguments=arguments,
            anchor=anchor_for(call_id),
        )

    def _task(self, event: RunEvent, step: StepPublic) -> None:
        task = self.tasks.get(str(step.result)) if step.result else None
        if task is None:
            self._step(event, step)
            return
        facts = [("role", task.role), ("status", task.status)]
        if task.assignee:
            facts.append(("assignee", self._name(task.assignee)))
        if task.options:
            facts.append(("options", ", ".join(task.options)))
        if task.due_at:
            facts.append(("due", _when(task.due_at)))
        if task.escalate_to:
            facts.append(("escalates to", task.escalate_to))
        entry = self._add(
            event,
            "task",
            f"Human task opened: {task.title}",
            tone="wait",
            facts=facts,
            seq=step.seq,
            anchor=f"task-{task.id}",
        )
        if task.payload is not None:
            entry.output = Clip.of(pretty(task.payload))

    def _resume(self, event: RunEvent, step: StepPublic) -> None:
        result = step.result if isinstance(step.result, dict) else {}
        name = step.name.removeprefix("signal:")
        facts = self._step_facts(step)[:1]
        if self.waiting_since is not None:
            facts.append(("waited", seconds((event.created_at - self.waiting_since).total_seconds())))
            self.waiting_since = None
        if result.get("timed_out"):
            title, tone = f"Wait for {name} timed out", "warn"
        elif name.startswith("task:"):
            title, tone = "Resumed with the person's decision", "ok"
        else:
            title, tone = f"Resumed by signal {name}", "ok"
        entry = self._add(event, "resume", title, tone=tone, facts=facts, seq=step.seq)
        if result.get("payload") is not None:
            entry.output = Clip.of(pretty(result["payload"]))

    def _timer(self, event: RunEvent, step: StepPublic) -> None:
        facts = self._step_facts(step)[:1]
        if self.waiting_since is not None:
            facts.append(("slept", seconds((event.created_at - self.waiting_since).total_seconds())))
            self.waiting_since = None
        self._add(event, "resume", "Timer fired", tone="ok", facts=facts, seq=step.seq)

    def _child(self, event: RunEvent, step: StepPublic) -> None:
        child = str(step.result) if step.result else ""
        self._add(
            event,
            "step",
            f"Started a child run ({step.name.removeprefix('child:')})",
            tone="ok",
            facts=self._step_facts(step)[:1],
            link=(f"/console/runs/{child}", "open the child run") if child else None,
            seq=step.seq,
        )

    # Waits, retries, throttling, recoveries.

    def _on_run_waiting(self, event: RunEvent, data: dict[str, Any]) -> None:
        self.waiting_since = event.created_at
        signal = str(data.get("signal", ""))
        facts = [("signal", signal)]
        if data.get("until"):
            facts.append(("gives up at", _when(data["until"])))
        person = signal.startswith("task:")
        title = "Waiting for a person's decision" if person else f"Waiting for signal {signal}"
        self._add(event, "wait", title, tone="wait", facts=facts)

    def _on_run_sleeping(self, event: RunEvent, data: dict[str, Any]) -> None:
        self.waiting_since = event.created_at
        until = _when(data.get("until"))
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
                ("at", _when(event.created_at + timedelta(seconds=delay))),
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
                ("resumes at", _when(event.created_at + timedelta(seconds=delay))),
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
        self._add(event, "run", "Failed", tone="bad", text=str(data.get("error") or self.run.error or ""))

    def _on_run_cancelled(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "run", "Cancelled", tone="bad", text=str(data.get("error") or ""))

    def _on_run_cancel_requested(self, event: RunEvent, data: dict[str, Any]) -> None:
        reason = data.get("reason") or ("its parent was cancelled" if data.get("by") == "parent" else "")
        self._add(event, "run", "Cancellation requested", tone="warn", text=str(reason or ""))

    def _on_answer(self, event: RunEvent, data: dict[str, Any]) -> None:
        refs = data.get("citations") or []
        facts = [("cites", " ".join(f"[{n}]" for n in refs))] if refs else []
        self._add(event, "answer", "Answered", tone="ok", facts=facts)

    def _on_answer_missing(self, event: RunEvent, data: dict[str, Any]) -> None:
        self._add(event, "answer", "Ended without an answer", tone="warn", text=str(data.get("reason") or ""))

    def _on_process_transition(self, event: RunEvent, data: dict[str, Any]) -> None:
        fired = _mapping(data.get("event"))
        facts = [("event", str(fired.get("name", "")))]
        if fired.get("actor"):
            facts.append(("actor", self._name(fired["actor"])))
        title = f"Transition: {data.get('source')} → {data.get('target')}"
        entry = self._add(event, "transition", title, tone="ok", facts=facts)
        if data.get("data") is not None:
            entry.output = Clip.of(pretty(data["data"]))

    def _on_process_refused(self, event: RunEvent, data: dict[str, Any]) -> None:
        fired = _mapping(data.get("event"))
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
        data = _mapping(event.data)
        if event.type == "task.decided" and data.get("by"):
            found.append(str(data["by"]))
        fired = _mapping(data.get("event"))
        if fired and fired.get("actor"):
            found.append(str(fired["actor"]))
    for task in tasks:
        for who in (task.assignee, task.decided_by):
            if isinstance(who, uuid.UUID):
                found.append(str(who))
    return found
