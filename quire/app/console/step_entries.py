"""A run's recorded steps as timeline entries: a model call with its response and the tool calls
it asked for, a tool's output, a task, a wait that resumed, a timer, a child run. The
`Timeline` (console/timeline.py) walks the events and hands each step's event to these.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from quire.agent.citations import NumberedCitation, numbered_text
from quire.agent.routing import ModelCall
from quire.app.console.charts import dollars
from quire.app.console.entries import (
    Clip,
    Entry,
    RequestedCall,
    anchor_for,
    moment,
    pretty,
    seconds,
    tokens,
)
from quire.runtime.models import HumanTask, RunEvent, RunPublic, StepPublic
from quire.runtime.process import PLAN_WAIT_STEP

MODEL_STEP = re.compile(r"^model:(\d+)$")
TOOL_STEP = re.compile(r"^tool:(\d+):(\d+):(.+)$")


class StepEntries:
    """The part of a timeline that tells steps (mixed into `Timeline`, which holds the state)."""

    run: RunPublic
    steps: dict[int, StepPublic]
    tasks: dict[str, HumanTask]
    requested: dict[str, dict[str, Any]]
    results: dict[str, dict[str, Any]]
    tool_steps: dict[str, StepPublic]
    entries: list[Entry]
    waiting_since: datetime | None

    def _add(self, event: RunEvent, kind: str, title: str, **fields: Any) -> Entry:
        raise NotImplementedError

    def _name(self, actor: Any) -> str:
        raise NotImplementedError

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
        elif step.name == PLAN_WAIT_STEP and isinstance(step.result, dict):
            self._plan_wait(event, step)
        else:
            self._step(event, step)

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
            entry.output = Clip.of(as_the_model_read_it(content, result.get("citations"), sources))

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
            facts.append(("due", moment(task.due_at)))
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
        fired = self._timer_planned(step.seq)
        if result.get("timed_out") and fired:
            title, tone = f"Timer fired: {fired}", "info"
        elif result.get("timed_out"):
            title, tone = f"Wait for {name} timed out", "warn"
        elif name.startswith("task:"):
            title, tone = "Resumed with the person's decision", "ok"
        else:
            title, tone = f"Resumed by signal {name}", "ok"
        entry = self._add(event, "resume", title, tone=tone, facts=facts, seq=step.seq)
        if result.get("payload") is not None:
            entry.output = Clip.of(pretty(result["payload"]))

    def _plan_wait(self, event: RunEvent, step: StepPublic) -> None:
        """A process deciding which of its timers fires first while it waits: said in words."""
        plan = step.result if isinstance(step.result, dict) else {}
        fires, timeout = plan.get("fires"), plan.get("timeout_s")
        if not fires:
            title = "No timer: it waits for an event"
        elif not timeout:
            title = f"Timer “{fires}” is due at once"
        else:
            title = f"Timer “{fires}” set: it fires in {seconds(float(timeout))} unless an event comes first"
        self._add(event, "timer", title, tone="muted", seq=step.seq)

    def _timer_planned(self, seq: int) -> str:
        """The timer the plan just before step `seq` set, if that step is a process's plan."""
        plan = self.steps.get(seq - 1)
        if plan is None or plan.name != PLAN_WAIT_STEP or not isinstance(plan.result, dict):
            return ""
        return str(plan.result.get("fires") or "")

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


def as_the_model_read_it(content: str, citations: Any, numbers: list[int]) -> str:
    """A tool result with its sources under the run's numbers (the tool.result event names them,
    in the result's order): the step recorded them unnumbered."""
    if not isinstance(citations, list) or len(citations) != len(numbers) or not citations:
        return content
    numbered = [NumberedCitation(ref=n, **c) for n, c in zip(numbers, citations, strict=True)]
    return numbered_text(content, numbered)
