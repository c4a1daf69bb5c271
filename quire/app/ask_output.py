"""How `quire ask` shows a run, whichever way it reaches it: its events as they come, then the
answer and its sources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from rich.console import Console

from quire.agent.events import AgentEventType
from quire.client.models import AgentRun, RunEvent

# The runtime's event types (quire.runtime.events imports the database layer; these are its values).
RUN_WAITING = "run.waiting"
TASK_CREATED = "task.created"


class Asker(Protocol):
    note: str  # said after the run's id: where it runs

    def start(self, question: str, *, collections: tuple[str, ...], route: str | None) -> str: ...

    def events(self, run_id: str) -> Iterator[RunEvent]: ...

    def result(self, run_id: str) -> AgentRun: ...


def follow(
    asker: Asker,
    question: str,
    *,
    collections: tuple[str, ...],
    route: str | None,
    console: Console | None,
) -> AgentRun:
    """Start a run, show its events on `console` (None: show nothing), and return it once ended."""
    run_id = asker.start(question, collections=collections, route=route)
    printer = EventPrinter(console, run_id) if console is not None else None
    if console is not None:
        console.print(f"[dim]run {run_id}{asker.note}[/]", highlight=False)
    for event in asker.events(run_id):
        if printer is not None:
            printer.show(event.type, event.data or {})
    run = asker.result(run_id)
    if printer is not None and console is not None:
        printer.end()
        print_answer(console, run, streamed=printer.streamed)
    return run


class EventPrinter:
    """Prints a run's events: streamed tokens inline, tool calls and waits on lines of their own."""

    def __init__(self, console: Console, run_id: str) -> None:
        self.console = console
        self.run_id = run_id
        self.streamed = False
        self.mid_line = False

    def show(self, kind: str, data: dict[str, Any]) -> None:
        console = self.console
        if kind == AgentEventType.model_delta:
            console.print(data.get("text", ""), end="", highlight=False, soft_wrap=True)
            self.streamed = self.mid_line = True
            return
        if self.mid_line:  # a step's events are written after the tokens its model call streamed
            console.print()
            self.mid_line = False
        if kind == AgentEventType.model_retry:  # a terminal cannot take the text back: say so
            console.print("[yellow](the text above is withdrawn: the model call is made again)[/]")
        elif kind == AgentEventType.tool_call:
            console.print(f"[cyan]→ {data['name']}[/]({_args(data.get('arguments') or {})})", highlight=False)
        elif kind == AgentEventType.tool_result:
            detail = (
                f"error: {data['error']}"
                if data.get("error")
                else f"{len(data.get('sources') or [])} source(s)"
            )
            console.print(f"[cyan]← {data['name']}[/] {detail}", highlight=False)
        elif kind == AgentEventType.model_fallback:
            console.print(f"[yellow]model {data['target']}: {data['outcome']}[/]", highlight=False)
        elif kind == RUN_WAITING:
            console.print(f"[yellow]waiting: {data}[/]", highlight=False)
        elif kind == TASK_CREATED:
            console.print(
                f"[yellow]a person must answer: {data.get('title')} (quire runs show {self.run_id})[/]"
            )

    def end(self) -> None:
        if self.mid_line:
            self.console.print()  # end the streamed answer's line
            self.mid_line = False


def print_answer(console: Console, run: AgentRun, *, streamed: bool) -> None:
    console.print()
    if not run.answer:
        console.print(f"[red]No answer: {run.stop_reason or run.error or run.status}[/]")
    elif not streamed:
        console.print(run.answer, highlight=False)
    if run.citations:
        console.print("\n[bold]Sources[/]")
        for citation in run.citations:
            console.print(f"  [{citation.n}] {citation.label()}", highlight=False)
    tokens = run.usage.input_tokens + run.usage.output_tokens
    console.print(f"[dim]{run.model_calls} model call(s), {tokens} tokens, ${run.cost_usd:.4f}[/]")


def _args(arguments: dict[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())[:200]
