"""The run inspector's timeline, built from made-up steps and events: what each kind of event says,
and how model calls, tool calls and their steps are folded together."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from quire.app.console.entries import Clip, Entry, seconds
from quire.app.console.timeline import build_timeline
from quire.runtime.models import HumanTask, RunEvent, RunPublic, RunStatus, StepPublic

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RUN = uuid.uuid4()
TENANT = uuid.uuid4()


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def step(seq: int, name: str, result: Any = None, *, s: float, kind: str = "step", **kw: Any) -> StepPublic:
    values: dict[str, Any] = {"status": "completed", "attempt": 1, "error": None, **kw}
    return StepPublic(
        seq=seq, name=name, kind=kind, result=result, started_at=at(s - 0.01), finished_at=at(s), **values
    )


def run(steps: list[StepPublic], program: str = "test.program") -> RunPublic:
    return RunPublic(
        id=RUN,
        program=program,
        program_version=1,
        status=RunStatus.completed,
        parent_id=None,
        created_at=T0,
        updated_at=T0,
        finished_at=at(60),
        error=None,
        input={},
        state=None,
        wake_at=None,
        waiting_for=None,
        cancel_requested=False,
        attempt=0,
        recoveries=0,
        steps=steps,
    )


def events(*items: tuple[float, str, Any]) -> list[RunEvent]:
    return [
        RunEvent(id=i + 1, tenant_id=TENANT, run_id=RUN, type=kind, data=data, created_at=at(s))
        for i, (s, kind, data) in enumerate(items)
    ]


def titles(entries: list[Entry]) -> list[str]:
    return [e.title for e in entries]


def model_call(
    turn: int, text: str, calls: list[dict[str, Any]], attempts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "completion": {
            "message": {"role": "assistant", "content": text, "tool_calls": calls},
            "usage": {"input_tokens": 1200, "output_tokens": 30, "cached_input_tokens": 1000},
            "finish_reason": "tool_calls" if calls else "stop",
            "model": "m",
            "provider": "scripted",
        },
        "target": "fast",
        "model": "m",
        "cost_usd": 0.00042,
        "attempts": attempts,
        "latency_ms": 1530.0,
        "finished_at": at(turn + 1).isoformat(),
    }


def test_retries_throttling_recoveries_timers_and_the_end() -> None:
    steps = [
        step(0, "fetch", {"rows": 3}, s=5, attempt=2),
        step(1, "sleep", {"until": "x"}, s=40, kind="sleep"),
    ]
    entries = build_timeline(
        run(steps),
        events(
            (0, "run.created", {"program": "test.program", "version": 1, "parent_id": None}),
            (
                1,
                "step.retrying",
                {"seq": 0, "name": "fetch", "attempt": 1, "error": "OSError: down", "delay_s": 2.5},
            ),
            (3, "run.recovered", {"lost_worker": "w-1", "recoveries": 1}),
            (5, "step.completed", {"seq": 0, "name": "fetch", "kind": "step", "attempt": 2}),
            (6, "step.throttled", {"seq": 1, "name": "call", "attempt": 0, "error": "429", "delay_s": 30}),
            (10, "run.sleeping", {"until": at(40).isoformat(), "seq": 1}),
            (40, "step.completed", {"seq": 1, "name": "sleep", "kind": "sleep", "attempt": 1}),
            (41, "run.yielded", {"steps": 50}),
            (42, "something.new", {"x": "<y>"}),
            (60, "run.completed", None),
        ),
    )
    assert titles(entries) == [
        "Created: test.program v1",
        "Retry: fetch failed on attempt 1",
        "Recovered: the worker running this run was lost; another took it over",
        "Step: fetch",
        "Throttled: call parked until the provider allows calls again",
        "Sleeping on a timer",
        "Timer fired",
        "Slice ended after 50 steps; a new message continues the run",
        "something.new",
        "Completed",
    ]
    retry, recovery, fetched, throttled, sleeping, fired = entries[1:7]
    assert ("next try in", "2.5 s") in retry.facts and retry.text == "OSError: down" and retry.tone == "warn"
    assert ("lost worker", "w-1") in recovery.facts
    assert ("attempt", "2") in fetched.facts and fetched.output and '"rows": 3' in fetched.output.full
    assert ("Retry-After", "30 s") in throttled.facts and (
        "resumes at",
        "2026-01-05 09:00:36 UTC",
    ) in throttled.facts
    assert sleeping.tone == "wait" and ("slept", "30 s") in fired.facts
    assert [e.offset for e in entries[:2]] == ["+0 ms", "+1.0 s"]
    assert entries[8].output and '"<y>"' in entries[8].output.full  # escaped by the template, not here


def test_model_and_tool_calls_are_told_with_their_steps() -> None:
    calls: list[dict[str, Any]] = [
        {"id": "a", "name": "search_content", "arguments": {"query": "holidays"}},
        {"id": "b", "name": "read_section", "arguments": {"element_id": "e1"}},
        {"id": "c", "name": "nope", "arguments": {}, "raw_arguments": "{oops", "parse_error": "not JSON"},
    ]
    attempts: list[dict[str, Any]] = [
        {"target": "big", "outcome": "rate_limited", "error": "slow down", "retry_after": 12.0},
        {"target": "fast", "outcome": "ok"},
    ]
    steps = [
        step(0, "model:0", model_call(0, "Looking.", calls, attempts), s=1),
        step(
            1, "tool:0:0:search_content", {"call_id": "a", "content": "line\n" * 30, "is_error": False}, s=2
        ),
        step(2, "tool:0:1:read_section", None, s=2.5, status="failed", attempt=3, error="KeyError: e1"),
        step(3, "model:1", model_call(1, "The answer [1].", [], [{"target": "fast", "outcome": "ok"}]), s=3),
    ]
    entries = build_timeline(
        run(steps, program="agent.answer"),
        events(
            (1, "step.completed", {"seq": 0, "name": "model:0"}),
            (1, "model.fallback", attempts[0]),
            (1, "model.call", {"turn": 0}),
            (1, "tool.call", {"id": "a", "name": "search_content", "arguments": {"query": "holidays"}}),
            (1, "tool.call", {"id": "b", "name": "read_section", "arguments": {"element_id": "e1"}}),
            (1, "tool.call", {"id": "c", "name": "nope", "arguments": {}}),
            (2, "step.completed", {"seq": 1, "name": "tool:0:0:search_content"}),
            (2.5, "step.failed", {"seq": 2, "name": "tool:0:1:read_section", "error": "KeyError: e1"}),
            (3, "tool.result", {"id": "a", "name": "search_content", "is_error": False, "sources": [1, 2]}),
            (3, "tool.result", {"id": "b", "name": "read_section", "error": "KeyError: e1"}),
            (3, "step.completed", {"seq": 3, "name": "model:1"}),
            (3, "answer", {"text": "The answer [1].", "citations": [1]}),
        ),
    )
    assert titles(entries) == [
        "Fallback: big rate limited, tried the next target",
        "Model call, turn 0: asked for 3 tool calls",
        "Tool call not run: nope",
        "Tool call: search_content",
        "Tool call: read_section failed",
        "Model call, turn 1: answered",
        "Answered",
    ]
    fallback, model, refused, search, read, _, answered = entries
    assert ("Retry-After", "12 s") in fallback.facts and fallback.text == "slow down"
    assert ("cached", "1,000") in model.facts and ("cost", "$0.00042") in model.facts
    assert ("latency", "1.5 s") in model.facts and model.text == "Looking."
    assert [(c.name, c.anchor, c.problem) for c in model.calls] == [
        ("search_content", "call-a", None),
        ("read_section", "call-b", None),
        ("nope", "call-c", "not JSON"),
    ]
    assert model.calls[2].arguments == "{oops"  # what the model sent, since it was not JSON
    assert refused.anchor == "call-c" and refused.tone == "warn"
    assert search.anchor == "call-a" and '"query": "holidays"' in search.arguments
    assert ("sources", "[1] [2]") in search.facts
    assert search.output and search.output.clipped and search.output.head.count("\n") == 7
    assert read.anchor == "call-b" and read.tone == "bad" and read.text == "KeyError: e1"
    assert ("attempt", "3") in read.facts and '"element_id": "e1"' in read.arguments
    assert ("cites", "[1]") in answered.facts


def test_transitions_signals_and_children() -> None:
    child = uuid.uuid4()
    steps = [
        step(0, "child:content.ingest", str(child), s=1, kind="child"),
        step(1, "signal:event", {"payload": {"name": "approve"}, "timed_out": False}, s=9, kind="signal"),
    ]
    entries = build_timeline(
        run(steps),
        events(
            (1, "step.completed", {"seq": 0, "name": "child:content.ingest"}),
            (2, "run.waiting", {"signal": "event", "until": None}),
            (8, "signal.received", {"name": "event", "key": "k1"}),
            (9, "step.completed", {"seq": 1, "name": "signal:event"}),
            (
                9,
                "process.transition",
                {
                    "event": {"name": "approve", "actor": "u1"},
                    "source": "review",
                    "target": "done",
                    "data": {"n": 1},
                },
            ),
            (10, "process.refused", {"event": {"name": "reject"}, "reason": "already done"}),
        ),
        names={"u1": "Rita (reviewer)"},
    )
    assert titles(entries) == [
        "Started a child run (content.ingest)",
        "Waiting for the process's next event",
        "Signal received: event",
        "Resumed by signal event",
        "Transition: review → done",
        "Event refused: reject",
    ]
    assert entries[0].link == (f"/console/runs/{child}", "open the child run")
    assert ("waited", "7.0 s") in entries[3].facts
    assert ("actor", "Rita (reviewer)") in entries[4].facts
    assert entries[5].text == "already done"


def test_a_process_waiting_on_a_task_waits_for_that_roles_decision() -> None:
    task = HumanTask(
        tenant_id=TENANT,
        run_id=RUN,
        seq=2,
        title="Review a proposed memory",
        role="reviewer",
        signal_name="event",
        status="open",
        created_at=at(1),
    )
    entries = build_timeline(
        run([]),
        events(
            (1, "task.created", {"task_id": str(task.id)}),
            (2, "run.waiting", {"signal": "event", "until": None}),
            (3, "run.waiting", {"signal": "go", "until": None}),
        ),
        tasks=[task],
    )
    assert titles(entries) == ["Waiting for a reviewer's decision", "Waiting for signal go"]
    assert ("task", "Review a proposed memory") in entries[0].facts
    assert not any(label == "signal" for label, _ in entries[0].facts)


def test_a_process_timer_reads_as_a_timer_not_as_runtime_steps() -> None:
    steps = [
        step(0, "plan-wait", {"fires": "check", "timeout_s": 0.0}, s=1),
        step(1, "signal:event", {"payload": None, "timed_out": True}, s=1.1, kind="signal"),
        step(2, "plan-wait", {"fires": "expire", "timeout_s": 7200.0}, s=2),
        step(3, "plan-wait", {"fires": None, "timeout_s": None}, s=3),
    ]
    entries = build_timeline(
        run(steps, program="process:memory-review"),
        events(
            (1, "step.completed", {"seq": 0, "name": "plan-wait"}),
            (1.1, "step.completed", {"seq": 1, "name": "signal:event"}),
            (2, "step.completed", {"seq": 2, "name": "plan-wait"}),
            (3, "step.completed", {"seq": 3, "name": "plan-wait"}),
        ),
    )
    assert titles(entries) == [
        "Timer “check” is due at once",
        "Timer fired: check",
        "Timer “expire” set: it fires in 2 h unless an event comes first",
        "No timer: it waits for an event",
    ]
    assert all(entry.output is None for entry in entries)  # no runtime records as JSON
    assert entries[0].tone == "muted" and entries[1].tone == "info"


def test_long_output_is_clipped_and_capped() -> None:
    short = Clip.of("ok")
    assert not short.clipped and short.head == short.full == "ok"
    wide = Clip.of("x" * 1000)
    assert wide.clipped and len(wide.head) == 602 and wide.size == 1000 and wide.full == "x" * 1000
    huge = Clip.of("y" * 300_000)
    assert huge.full.endswith("(100,000 more)")
    assert [seconds(v) for v in (0.0123, 4.26, 42, 125, 7300, 90000)] == [
        "12 ms",
        "4.3 s",
        "42 s",
        "2 min 5 s",
        "2 h 1 min",
        "1 d 1 h",
    ]
