"""The process engine: deterministic business logic as a typed, versioned state machine.

A process declares its states, the events that move it, guards (pure functions that refuse an
event with a reason), pure updates of its typed data, actions with side effects (each a durable
step), compensations, human tasks and timers. An instance is a run of the runtime: it waits for
events as signals, holding no worker, and every accepted or refused event lands in the run's
event log, from which `fold` rebuilds the instance exactly.

Agent reasoning may only send events; the guards decide.

Who may fire a transition is part of its declaration (`Transition.role`): None means Quire
itself only (timers, other runs, internal code); a role means a person of that role or a
stronger one. The engine checks it for every event it takes, whatever route delivered it, and
an event's actor is whoever sent it as authenticated, never what its payload says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlmodel import Session

from quire.core.errors import Forbidden
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.runtime.context import RunContext
from quire.runtime.errors import EventForbidden, InvalidEvent, InvalidProcess, StepFailed
from quire.runtime.events import RunEventType, append_event
from quire.runtime.kicks import Kicker
from quire.runtime.programs import Program, registry
from quire.runtime.results import Received
from quire.runtime.retry import DEFAULT_RETRY, RetryPolicy
from quire.runtime.signals import deliver_signal

S = TypeVar("S", bound=BaseModel)

EVENT_SIGNAL = "event"
# The step that decides, once, which timer would fire first while the process waits for an event.
PLAN_WAIT_STEP = "plan-wait"
ANY_STATE = "*"


class Event(BaseModel):
    """Something that happened to an instance: a person's decision, a timer, an API call."""

    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    actor: str | None = None
    result: Any = None  # what the transition's action returned, once it ran


Guard = Callable[[Any, Event], str | None]
Update = Callable[[Any, Event], Any]
Action = Callable[[RunContext, Any, Event], Any]
Compensation = Callable[[RunContext, Any, Event], None]


@dataclass(frozen=True)
class Transition:
    source: str | tuple[str, ...]
    event: str
    target: str
    guard: Guard | None = None
    update: Update | None = None
    action: Action | None = None
    compensate: Compensation | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    role: Role | None = None  # who may fire it: None is Quire itself only

    def leaves(self, state: str) -> bool:
        sources = (self.source,) if isinstance(self.source, str) else self.source
        return ANY_STATE in sources or state in sources


@dataclass(frozen=True)
class HumanTaskSpec:
    """A person decides while the instance is in a state; each option is an event name."""

    title: str
    options: tuple[str, ...]
    role: Role = Role.reviewer
    due: timedelta | None = None
    escalate_to: Role | None = None
    # The route that decides it, when the process's domain checks decisions there (the generic
    # task route then refuses it).
    decided_through: str | None = None


@dataclass(frozen=True)
class Timer:
    """If nothing moves the instance out of its state first, `event` fires: `after` a delay from
    when the instance starts waiting, or `at` a moment read from the instance's data (None: no
    timer this time). `Timer("go", after=timedelta(0))` moves on at once."""

    event: str
    after: timedelta | None = None
    at: Callable[[Any], datetime | None] | None = None

    def due(self, data: Any, now: datetime) -> datetime | None:
        if self.at is not None:
            return self.at(data)
        return now + self.after if self.after is not None else None


class Instance(BaseModel):
    """A process instance as the run stores it: where it is, its data, what may be undone."""

    current: str
    data: dict[str, Any]
    compensable: list[dict[str, Any]] = Field(default_factory=list)


class TransitionRecord(BaseModel):
    """One accepted event, as the event log keeps it."""

    event: Event
    source: str
    target: str
    data: dict[str, Any]


@dataclass
class Process(Generic[S]):
    name: str
    version: int
    state_type: type[S]
    states: Iterable[str]
    initial: str
    final: Iterable[str]
    transitions: list[Transition]
    tasks: dict[str, HumanTaskSpec] = field(default_factory=dict)
    timers: dict[str, list[Timer]] = field(default_factory=dict)
    # Whether POST /v1/runs/{id}/events may offer events (a domain with routes of its own, such as
    # memory review, says False) and POST /v1/runs may start instances.
    external_events: bool = True
    startable: bool = True
    # A role that sees every instance besides whoever started it (reviewers: memory reviews).
    visible_to: Role | None = None

    def __post_init__(self) -> None:
        self.states = frozenset(self.states)
        self.final = frozenset(self.final)
        self._check()

    @property
    def program_name(self) -> str:
        return f"process:{self.name}"

    def _check(self) -> None:
        states, final = frozenset(self.states), frozenset(self.final)
        problems = []
        if self.initial not in states:
            problems.append(f"initial state {self.initial!r} is not a state")
        problems += [f"final state {s!r} is not a state" for s in final - states]
        for t in self.transitions:
            sources = (t.source,) if isinstance(t.source, str) else t.source
            problems += [
                f"transition {t.event!r} leaves unknown state {s!r}"
                for s in sources
                if s != ANY_STATE and s not in states
            ]
            problems += [f"transition {t.event!r} leaves final state {s!r}" for s in sources if s in final]
            if t.target not in states:
                problems.append(f"transition {t.event!r} enters unknown state {t.target!r}")
        for state, spec in self.tasks.items():
            if state not in states:
                problems.append(f"task {spec.title!r} belongs to unknown state {state!r}")
            for option in spec.options:
                if not any(t.event == option and t.leaves(state) for t in self.transitions):
                    problems.append(f"task option {option!r} moves nowhere from {state!r}")
        for state, timers in self.timers.items():
            for timer in timers:
                if not any(t.event == timer.event and t.leaves(state) for t in self.transitions):
                    problems.append(f"timer event {timer.event!r} moves nowhere from {state!r}")
        if problems:
            raise InvalidProcess(f"process {self.name} v{self.version}: " + "; ".join(problems))

    # The pure core: no I/O, so it can be tested exhaustively and replayed.

    def start(self, data: S) -> Instance:
        return Instance(current=self.initial, data=data.model_dump(mode="json"))

    def decide(self, instance: Instance, event: Event, *, sender: Role | None = None) -> Transition:
        """The transition `event` takes from `instance`, or InvalidEvent with the reason.

        `sender` is the role of the person who sent the event; None is Quire itself.
        """
        if instance.current in frozenset(self.final):
            raise InvalidEvent(f"{self.name} is {instance.current}, a final state; it takes no events")
        candidates = [t for t in self.transitions if t.event == event.name and t.leaves(instance.current)]
        if not candidates:
            allowed = sorted({t.event for t in self.transitions if t.leaves(instance.current)})
            raise InvalidEvent(
                f"{event.name!r} cannot happen in state {instance.current!r} "
                f"(it takes: {', '.join(allowed) or 'nothing'})"
            )
        data = self.state_type.model_validate(instance.data)
        reasons = []
        for transition in candidates:
            reason = _forbidden(transition, sender)
            if reason is not None:
                raise EventForbidden(f"{event.name!r} refused in state {instance.current!r}: {reason}")
            reason = transition.guard(data, event) if transition.guard else None
            if reason is None:
                return transition
            reasons.append(reason)
        raise InvalidEvent(f"{event.name!r} refused in state {instance.current!r}: {'; '.join(reasons)}")

    def apply(self, instance: Instance, transition: Transition, event: Event) -> Instance:
        data = self.state_type.model_validate(instance.data)
        if transition.update is not None:
            data = transition.update(data, event)
        compensable = list(instance.compensable)
        if transition.compensate is not None:
            compensable.append(
                {
                    "event": event.model_dump(mode="json"),
                    "index": self.transitions.index(transition),
                }
            )
        return Instance(current=transition.target, data=data.model_dump(mode="json"), compensable=compensable)

    def fold(self, start: Instance, log: Iterable[TransitionRecord]) -> Instance:
        """Rebuild an instance from its event log."""
        instance = start
        for record in log:
            transition = self.decide(instance, record.event)
            instance = self.apply(instance, transition, record.event)
        return instance

    # Running on the runtime.

    def run(self, ctx: RunContext, instance: Instance) -> Instance:
        entered = True
        task_id: uuid.UUID | None = None
        escalated = False
        while instance.current not in frozenset(self.final):
            spec = self.tasks.get(instance.current)
            if entered and spec is not None:
                task_id = ctx.create_task(
                    spec.title,
                    role=spec.role,
                    options=list(spec.options),
                    due=spec.due,
                    escalate_to=spec.escalate_to,
                    signal_name=EVENT_SIGNAL,
                    payload={"process": self.name, "state": instance.current, "data": instance.data},
                    decided_through=spec.decided_through,
                )
                escalated = False
            entered = False
            # Which timer would fire first is decided once, in a step, so replays agree.
            plan = ctx.step(PLAN_WAIT_STEP, self._plan_wait, instance, escalated)
            received = ctx.receive(EVENT_SIGNAL, timeout=plan["timeout_s"])
            sender: Role | None = None
            if received is None:
                if plan["fires"] == "escalate":
                    assert spec is not None and spec.escalate_to is not None and task_id is not None
                    ctx.step("escalate", _escalate, ctx, task_id, spec.escalate_to)
                    escalated = True
                    continue
                event = Event(name=str(plan["fires"]), actor="timer")
            else:
                event, sender = self._event_from(received)
            try:
                transition = self.decide(instance, event, sender=sender)
            except InvalidEvent as refused:
                ctx.emit(
                    RunEventType.process_refused,
                    {"event": event.model_dump(mode="json"), "reason": str(refused)},
                )
                continue
            if transition.action is not None:
                action = transition.action
                try:
                    event.result = ctx.step(
                        f"action:{transition.event}",
                        action,
                        ctx,
                        self.state_type.model_validate(instance.data),
                        event,
                        retry=transition.retry,
                    )
                except StepFailed:
                    self.compensate(ctx, instance)
                    raise
            if task_id is not None and transition.target != instance.current:
                ctx.step("close-task", _close_task, ctx, task_id)
                task_id = None
            source = instance.current
            instance = self.apply(instance, transition, event)
            ctx.emit(
                RunEventType.process_transition,
                TransitionRecord(event=event, source=source, target=instance.current, data=instance.data),
            )
            ctx.publish(instance)
            entered = instance.current != source
        return instance

    def _plan_wait(self, instance: Instance, escalated: bool) -> dict[str, Any]:
        now = datetime.now(UTC)
        data = self.state_type.model_validate(instance.data)
        candidates: list[tuple[datetime, str]] = []
        for timer in self.timers.get(instance.current, []):
            due = timer.due(data, now)
            if due is not None:
                candidates.append((due, timer.event))
        spec = self.tasks.get(instance.current)
        if spec is not None and spec.escalate_to is not None and spec.due and not escalated:
            candidates.append((now + spec.due, "escalate"))
        if not candidates:
            return {"timeout_s": None, "fires": None}
        due, fires = min(candidates, key=lambda c: c[0])
        return {"timeout_s": max(0.0, (due - now).total_seconds()), "fires": fires}

    def compensate(self, ctx: RunContext, instance: Instance) -> None:
        """Undo completed actions, newest first (each undo is a durable step)."""
        for entry in reversed(instance.compensable):
            transition = self.transitions[entry["index"]]
            event = Event.model_validate(entry["event"])
            undo = transition.compensate
            assert undo is not None
            ctx.step(
                f"compensate:{transition.event}",
                undo,
                ctx,
                self.state_type.model_validate(instance.data),
                event,
            )

    def _event_from(self, received: Received) -> tuple[Event, Role | None]:
        """The event a signal carries, acted by its authenticated sender (the payload's actor
        counts only when Quire itself sent it), and the sender's role."""
        raw = received.payload
        if isinstance(raw, dict) and "decision" in raw and "name" not in raw:  # a task's decision
            event = Event(
                name=str(raw["decision"]),
                data={"comment": raw.get("comment"), **(raw.get("data") or {})},
                actor=raw.get("decided_by"),
            )
        else:
            event = Event.model_validate(raw)
        if received.sender_id is None:
            return event, None
        role = Role(received.sender_role) if received.sender_role else Role.reader
        return event.model_copy(update={"actor": str(received.sender_id)}), role

    def register(self) -> Process[S]:
        """Make instances of this version runnable (and startable) on the runtime."""

        def on_cancel(ctx: RunContext, instance: Instance) -> None:
            self.compensate(ctx, instance)

        def function(ctx: RunContext, instance: Instance) -> Instance:
            return self.run(ctx, instance)

        registry.add(
            Program(
                name=self.program_name,
                version=self.version,
                function=function,
                state_type=Instance,
                on_cancel=on_cancel,
                visible_to=self.visible_to,
                startable=self.startable,
            )
        )
        processes[(self.name, self.version)] = self
        return self


processes: dict[tuple[str, int], Process[Any]] = {}


def process_of(program: str, version: int) -> Process[Any] | None:
    if not program.startswith("process:"):
        return None
    return processes.get((program.removeprefix("process:"), version))


def _close_task(ctx: RunContext, task_id: uuid.UUID) -> None:
    from quire.runtime.models import HumanTask

    task = ctx.session.get(HumanTask, task_id, with_for_update=True)
    if task is not None and task.status == "open":
        task.status = "closed"
        ctx.session.add(task)


def _escalate(ctx: RunContext, task_id: uuid.UUID, role: Role) -> bool:
    from quire.runtime.tasks import escalate_task

    return escalate_task(ctx.session, task_id=task_id, role=role)


def send_event(
    session: Session,
    *,
    run_id: uuid.UUID,
    event: Event,
    kicker: Kicker | None,
    key: str | None = None,
    sender: Caller | None = None,
    public: bool = False,
) -> bool:
    """Offer `event` to a process instance; refuse it at once, with the reason, if its guards would.

    From a `sender` (a person) the instance must be one they may see, the transition must allow
    their role, and the event acts as them. Through the `public` runtime route, the process must
    also take events from outside (memory review takes its decisions through its own routes).
    The instance checks again when it takes the event (the state may move in between); both
    refusals are recorded in the run's event log.
    """
    from quire.runtime.service import get_run

    run = get_run(session, run_id=run_id, caller=sender)
    definition = process_of(run.program, run.program_version)
    if definition is None:
        raise InvalidEvent(f"run {run_id} is not a process instance")
    if public and not definition.external_events:
        raise Forbidden(f"{definition.name} takes its decisions through its own routes, not as events")
    if sender is not None:
        event = event.model_copy(update={"actor": str(sender.principal_id)})
    instance = Instance.model_validate(run.state or run.input)
    try:
        definition.decide(instance, event, sender=sender.role if sender else None)
    except InvalidEvent as refused:
        append_event(
            session,
            tenant_id=run.tenant_id,
            run_id=run_id,
            type=RunEventType.process_refused,
            data={"event": event.model_dump(mode="json"), "reason": str(refused)},
        )
        session.commit()
        raise
    return deliver_signal(
        session,
        run_id=run_id,
        name=EVENT_SIGNAL,
        key=key,
        payload=event.model_dump(mode="json"),
        kicker=kicker,
        sender=sender,
    )


def _forbidden(transition: Transition, sender: Role | None) -> str | None:
    """Why `sender` may not fire `transition` (None: they may; Quire itself always may)."""
    if sender is None:
        return None
    if transition.role is None:
        return "only Quire itself fires it"
    if not sender.allows(transition.role):
        return f"it needs the {transition.role.value} role; the sender's role is {sender.value}"
    return None
