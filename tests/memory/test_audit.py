"""The memory audit log (memory/audit.py): one hash chain per tenant that exposes any changed,
deleted or reordered event, and a replay that rebuilds the versions' states from it alone."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session

from quire.core.db import Database
from quire.core.models import Tenant
from quire.memory import audit
from quire.memory.models import MemoryEvent


def make_tenant(database: Database) -> uuid.UUID:
    with database.system_session() as session:
        tenant = Tenant(name=f"unit-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    return tenant.id


@pytest.fixture
def tenant_id(database: Database) -> uuid.UUID:
    return make_tenant(database)


def transition(
    session: Session,
    tenant_id: uuid.UUID,
    item_id: uuid.UUID,
    version_id: uuid.UUID,
    to: str,
    *,
    actor: str = "reviewer",
    reason: str | None = None,
) -> MemoryEvent:
    return audit.record(
        session,
        tenant_id=tenant_id,
        type=f"memory.{to}",
        actor=actor,
        item_id=item_id,
        version_id=version_id,
        reason=reason,
        data={"to": to, "at": uuid.uuid4()},
    )


def three_events(session: Session, tenant_id: uuid.UUID) -> list[MemoryEvent]:
    item, version = uuid.uuid4(), uuid.uuid4()
    transition(session, tenant_id, item, version, "proposed", actor="extractor:rules")
    transition(session, tenant_id, item, version, "in_review", actor="system")
    transition(session, tenant_id, item, version, "approved", reason="matches the policy")
    return audit.tenant_events(session)


def copies(events: list[MemoryEvent]) -> list[MemoryEvent]:
    """Detached copies to tamper with, as someone with the owner's rights could the rows."""
    return [MemoryEvent(**event.model_dump()) for event in events]


def test_each_event_seals_the_one_before_and_the_chain_verifies(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        events = three_events(session, tenant_id)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert len({e.hash for e in events}) == 3
    for before, event in zip([audit.GENESIS, *[e.hash for e in events]], events, strict=False):
        assert audit.event_hash(before, event) == event.hash
    assert audit.verify(events) == audit.Verification(True, 3, None, "all 3 events verify")
    assert audit.verify([]) == audit.Verification(True, 0, None, "all 0 events verify")


def test_each_tenant_has_a_chain_of_its_own(database: Database, tenant_id: uuid.UUID) -> None:
    other = make_tenant(database)
    with database.tenant_session(tenant_id) as session:
        ours = three_events(session, tenant_id)
        session.commit()  # kept, so the other tenant's chain is written while ours exists
    with database.tenant_session(other) as session:
        theirs = three_events(session, other)
        assert [e.tenant_id for e in audit.tenant_events(session)] == [other] * 3
        session.commit()
    assert [e.seq for e in theirs] == [1, 2, 3] and theirs[0].prev_hash == audit.GENESIS
    with database.tenant_session(tenant_id) as session:
        assert [e.id for e in audit.tenant_events(session)] == [e.id for e in ours]
        assert audit.verify(audit.tenant_events(session)) == audit.Verification(
            True, 3, None, "all 3 events verify"
        )
    # The tenant is part of what is hashed: the same event under another tenant seals otherwise.
    moved = MemoryEvent(**{**ours[0].model_dump(), "tenant_id": other})
    assert audit.event_hash(audit.GENESIS, moved) != ours[0].hash


def test_the_events_are_read_in_order_from_a_sequence_number(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        three_events(session, tenant_id)
        assert [e.seq for e in audit.tenant_events(session, since_seq=1)] == [2, 3]
        assert [e.seq for e in audit.tenant_events(session, limit=2)] == [1, 2]
        assert audit.tenant_events(session, since_seq=3) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "approved without reading"),
        ("actor", "someone-else"),
        ("type", "memory.rejected"),
        ("data", {"to": "rejected"}),
        ("version_id", uuid.uuid4()),
    ],
)
def test_an_altered_event_is_detected_where_it_was_altered(
    database: Database, tenant_id: uuid.UUID, field: str, value: object
) -> None:
    with database.tenant_session(tenant_id) as session:
        events = copies(three_events(session, tenant_id))
    setattr(events[1], field, value)
    result = audit.verify(events)
    assert result == audit.Verification(False, 1, 2, "event 2 was altered after it was written")


def test_an_altered_event_with_its_hash_recomputed_breaks_the_next_link(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        events = copies(three_events(session, tenant_id))
    events[1].reason = "rewritten"
    events[1].hash = audit.event_hash(events[1].prev_hash, events[1])
    assert audit.verify(events) == audit.Verification(False, 2, 3, "event 3 does not follow 2")


def test_a_deleted_event_is_detected(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        events = copies(three_events(session, tenant_id))
    assert audit.verify([events[0], events[2]]) == audit.Verification(False, 1, 2, "event 2 is missing")
    assert audit.verify(events[1:]) == audit.Verification(False, 0, 1, "event 1 is missing")


def test_reordered_events_are_detected(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        events = copies(three_events(session, tenant_id))
    swapped = [events[0], events[2], events[1]]
    assert audit.verify(swapped) == audit.Verification(False, 1, 2, "event 2 is missing")
    # Renumbered to hide the swap: the links no longer match.
    renumbered = copies(swapped)
    renumbered[1].seq, renumbered[2].seq = 2, 3
    assert audit.verify(renumbered) == audit.Verification(False, 1, 2, "event 2 does not follow 1")


def test_the_application_may_not_change_or_delete_an_event(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        three_events(session, tenant_id)
        session.commit()
    for statement in ("UPDATE memory_event SET reason = 'rewritten'", "DELETE FROM memory_event"):
        with (
            database.tenant_session(tenant_id) as session,
            pytest.raises(ProgrammingError, match="permission"),
        ):
            session.execute(text(statement))
    with database.tenant_session(tenant_id) as session:
        events = audit.tenant_events(session)
        assert len(events) == 3 and audit.verify(events).ok


def test_replay_rebuilds_each_versions_state_and_the_version_in_effect(
    database: Database, tenant_id: uuid.UUID
) -> None:
    travel, laptops = uuid.uuid4(), uuid.uuid4()
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with database.tenant_session(tenant_id) as session:
        transition(session, tenant_id, travel, first, "proposed")
        transition(session, tenant_id, travel, first, "approved")
        transition(session, tenant_id, travel, second, "proposed")
        transition(session, tenant_id, travel, second, "approved")
        transition(session, tenant_id, travel, first, "superseded")
        transition(session, tenant_id, laptops, third, "proposed")
        transition(session, tenant_id, laptops, third, "approved")
        transition(session, tenant_id, laptops, third, "withdrawn", reason="out of date")
        # An event that moves no version (a setting changed, say) changes nothing.
        audit.record(session, tenant_id=tenant_id, type="memory.settings", actor="admin", data={"sod": False})
        replayed = audit.replay(audit.tenant_events(session))
    assert replayed.version_states == {first: "superseded", second: "approved", third: "withdrawn"}
    assert replayed.approved == {travel: second, laptops: None}


def test_replay_of_a_prefix_is_the_state_at_that_point(database: Database, tenant_id: uuid.UUID) -> None:
    item, version = uuid.uuid4(), uuid.uuid4()
    with database.tenant_session(tenant_id) as session:
        transition(session, tenant_id, item, version, "proposed")
        transition(session, tenant_id, item, version, "approved")
        transition(session, tenant_id, item, version, "needs_recertification")
        events = audit.tenant_events(session)
    assert audit.replay(events[:2]).approved == {item: version}
    later = audit.replay(events)
    assert later.version_states == {version: "needs_recertification"} and later.approved == {item: None}


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "Europe/Berlin",  # hashed the written text (+00:00) but read back +01:00, until fixed
    ],
)
def test_the_chain_verifies_whatever_the_database_sessions_time_zone(
    database: Database, tenant_id: uuid.UUID, zone: str
) -> None:
    with database.tenant_session(tenant_id) as session:
        three_events(session, tenant_id)
        session.commit()
    with database.tenant_session(tenant_id) as session:
        # A server whose TimeZone is local time, or a client with PGTZ set, reads timestamps back
        # in that zone: the same instants, written differently.
        session.execute(text(f"SET LOCAL TIME ZONE '{zone}'"))
        events = audit.tenant_events(session)
        assert str(events[0].created_at.utcoffset()) == ("0:00:00" if zone == "UTC" else "1:00:00")
        assert audit.verify(events) == audit.Verification(True, 3, None, "all 3 events verify")
