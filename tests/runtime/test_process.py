"""The process engine: its pure core under random events, and instances on the runtime."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import text

from quire.core.models import Role
from quire.runtime.context import RunContext
from quire.runtime.errors import InvalidEvent, InvalidProcess
from quire.runtime.process import (
    Event,
    HumanTaskSpec,
    Instance,
    Process,
    Timer,
    Transition,
    TransitionRecord,
    send_event,
)
from tests.harness import Harness

shipped: list[str] = []
unshipped: list[str] = []


class Order(BaseModel):
    items: int = 0
    paid: bool = False
    notes: list[str] = []


def add_item(order: Order, event: Event) -> Order:
    return order.model_copy(update={"items": order.items + int(event.data.get("count", 1))})


def needs_items(order: Order, event: Event) -> str | None:
    return None if order.items > 0 else "an empty order cannot be submitted"


def pay(order: Order, event: Event) -> Order:
    return order.model_copy(update={"paid": True, "notes": [*order.notes, f"paid by {event.actor}"]})


def ship(ctx: RunContext, order: Order, event: Event) -> str:
    shipped.append(str(ctx.run_id))
    return f"parcel-{order.items}"


def unship(ctx: RunContext, order: Order, event: Event) -> None:
    unshipped.append(str(event.result))


def record_parcel(order: Order, event: Event) -> Order:
    return order.model_copy(update={"notes": [*order.notes, f"shipped {event.result}"]})


ORDER = Process(
    name="test-order",
    version=1,
    state_type=Order,
    states=["draft", "submitted", "approved", "shipped", "done", "rejected", "expired"],
    initial="draft",
    final=["done", "rejected", "expired"],
    transitions=[
        Transition("draft", "add", "draft", update=add_item, role=Role.contributor),
        Transition("draft", "submit", "submitted", guard=needs_items, role=Role.contributor),
        Transition("submitted", "approve", "approved", update=pay, role=Role.reviewer),
        Transition("submitted", "reject", "rejected", role=Role.reviewer),
        Transition(
            "approved",
            "ship",
            "shipped",
            action=ship,
            update=record_parcel,
            compensate=unship,
            role=Role.contributor,
        ),
        Transition("shipped", "deliver", "done", role=Role.contributor),
        Transition(("draft", "submitted"), "expire", "expired"),  # timers only
    ],
    tasks={
        "submitted": HumanTaskSpec("Approve the order", options=("approve", "reject"), role=Role.reviewer)
    },
    timers={"draft": [Timer("expire", after=timedelta(hours=1))]},
    visible_to=Role.reviewer,  # reviewers see every order, to approve them
).register()

EVENT_NAMES = ["add", "submit", "approve", "reject", "ship", "deliver", "expire", "bogus"]
events = st.lists(
    st.builds(
        Event,
        name=st.sampled_from(EVENT_NAMES),
        data=st.fixed_dictionaries({"count": st.integers(0, 3)}),
        actor=st.sampled_from(["ana", "ben", None]),
    ),
    max_size=25,
)


def step_pure(instance: Instance, event: Event) -> tuple[Instance, TransitionRecord | None]:
    try:
        transition = ORDER.decide(instance, event)
    except InvalidEvent:
        return instance, None
    if transition.action is not None:
        event = event.model_copy(update={"result": f"parcel-{instance.data['items']}"})
    after = ORDER.apply(instance, transition, event)
    return after, TransitionRecord(
        event=event, source=instance.current, target=after.current, data=after.data
    )


@settings(deadline=None)  # a scheduling stall is no failure
@given(events)
def test_random_events_never_reach_a_state_the_definition_does_not_allow(
    sequence: list[Event],
) -> None:
    instance = ORDER.start(Order())
    for event in sequence:
        before = instance
        instance, record = step_pure(instance, event)
        assert instance.current in ORDER.states
        if record is None:
            assert instance == before  # a refused event changes nothing
        else:
            assert any(
                t.event == event.name and t.leaves(before.current) and t.target == instance.current
                for t in ORDER.transitions
            )
            assert before.current not in ORDER.final
    if instance.current in ("submitted", "approved", "shipped", "done"):
        assert Order.model_validate(instance.data).items > 0  # the guard held


@settings(deadline=None)  # a scheduling stall is no failure
@given(events)
def test_replaying_the_event_log_rebuilds_the_state_exactly(sequence: list[Event]) -> None:
    instance, log = ORDER.start(Order()), []
    for event in sequence:
        instance, record = step_pure(instance, event)
        if record is not None:
            log.append(record)
    assert ORDER.fold(ORDER.start(Order()), log) == instance


def test_an_inconsistent_definition_is_refused() -> None:
    with pytest.raises(InvalidProcess, match="enters unknown state 'nowhere'"):
        Process(
            name="broken",
            version=1,
            state_type=Order,
            states=["a", "b"],
            initial="a",
            final=["b"],
            transitions=[Transition("a", "go", "nowhere"), Transition("b", "back", "a")],
        )


def log_of(harness: Harness, run_id: object) -> list[TransitionRecord]:
    with harness.database.tenant_session(harness.tenant_id) as session:
        rows = session.execute(
            text(
                "SELECT data FROM runtime_event WHERE run_id = :r AND type = 'process.transition' ORDER BY id"
            ),
            {"r": run_id},
        ).all()
    return [TransitionRecord.model_validate(row[0]) for row in rows]


def offer(harness: Harness, run_id: object, event: Event) -> str | None:
    with harness.database.tenant_session(harness.tenant_id) as session:
        try:
            send_event(session, run_id=run_id, event=event, kicker=harness.kicker)  # type: ignore[arg-type]
            session.commit()
            return None
        except InvalidEvent as refused:
            return str(refused)


def test_an_instance_runs_on_the_runtime_with_a_human_task_and_an_action(harness: Harness) -> None:
    shipped.clear()
    run_id = harness.start(ORDER.program_name, ORDER.start(Order()))
    harness.drive()
    assert offer(harness, run_id, Event(name="submit")) == (
        "'submit' refused in state 'draft': an empty order cannot be submitted"
    )
    assert offer(harness, run_id, Event(name="add", data={"count": 2})) is None
    harness.drive()
    assert offer(harness, run_id, Event(name="submit")) is None
    harness.drive()
    run = harness.run(run_id)
    assert run.state is not None and run.state["current"] == "submitted"
    assert [t.title for t in run.open_tasks] == ["Approve the order"]

    from quire.runtime.tasks import decide_task
    from tests.runtime.test_control import caller

    with harness.database.tenant_session(harness.tenant_id) as session:
        decide_task(
            session,
            task_id=run.open_tasks[0].id,
            caller=caller(harness, Role.reviewer),
            decision="approve",
            kicker=harness.kicker,
        )
        session.commit()
    harness.drive()
    offer(harness, run_id, Event(name="ship"))
    harness.drive()
    offer(harness, run_id, Event(name="ship"))  # a duplicate: refused, the parcel goes once
    offer(harness, run_id, Event(name="deliver"))
    harness.drive()

    run = harness.run(run_id)
    assert run.status == "completed"
    final = Instance.model_validate(run.state)
    assert final.current == "done"
    assert Order.model_validate(final.data).notes[-1] == "shipped parcel-2"
    assert shipped == [str(run_id)]
    assert "process.refused" in harness.events(run_id)
    assert ORDER.fold(ORDER.start(Order()), log_of(harness, run_id)) == final


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events)
def test_instances_on_the_runtime_match_their_event_log(harness: Harness, sequence: list[Event]) -> None:
    run_id = harness.start(ORDER.program_name, ORDER.start(Order()))
    harness.drive()
    expected = ORDER.start(Order())
    for event in sequence:
        if event.name == "bogus":
            continue
        offer(harness, run_id, event)
        harness.drive()
        expected, _ = step_pure(expected, event)
    run = harness.run(run_id)
    final = Instance.model_validate(run.state or run.input)
    assert (final.current, final.data) == (expected.current, expected.data)
    assert ORDER.fold(ORDER.start(Order()), log_of(harness, run_id)).data == final.data


def test_cancelling_an_instance_compensates_its_actions(harness: Harness) -> None:
    unshipped.clear()
    run_id = harness.start(ORDER.program_name, ORDER.start(Order(items=1)))
    harness.drive()
    for name in ("submit", "approve", "ship"):
        offer(harness, run_id, Event(name=name))
        harness.drive()
    from quire.runtime.service import cancel_run

    with harness.database.tenant_session(harness.tenant_id) as session:
        cancel_run(session, run_id=run_id, kicker=harness.kicker)
        session.commit()
    harness.drive()
    assert harness.run(run_id).status == "cancelled"
    assert unshipped == ["parcel-1"]
