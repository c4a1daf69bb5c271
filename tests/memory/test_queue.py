"""Finding memories for the API's list and the reviewer's queue (memory/queue.py): one set of
filters, oldest first, moving through it one by one, and nobody reads another person's memories."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlmodel import Session

from quire.core.db import Database
from quire.core.models import Role, Tenant, utcnow
from quire.core.tenancy import Caller
from quire.memory.findings import FLAGS
from quire.memory.models import MemoryItem, MemoryKind, MemoryScope, MemoryVersion, VersionState
from quire.memory.queue import QueueFilters, filtered, list_queue, neighbours, pending_decisions
from quire.runtime.models import HumanTask, Run
from tests.memory.test_checks import (
    add_document_version,
    make_document,
    make_item,
    make_version,
    quote_evidence,
)

START = utcnow() - timedelta(days=1)


@pytest.fixture
def tenant_id(database: Database) -> uuid.UUID:
    """A tenant of this test alone (rolled back with everything else)."""
    with database.system_session() as session:
        tenant = Tenant(name=f"unit-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    return tenant.id


def memory(
    session: Session,
    tenant_id: uuid.UUID,
    text: str,
    *,
    minute: int,
    state: VersionState = VersionState.in_review,
    kind: MemoryKind = MemoryKind.fact,
    scope: MemoryScope = MemoryScope.tenant,
    scope_ref: str | None = None,
    findings: dict[str, Any] | None = None,
) -> tuple[MemoryItem, MemoryVersion]:
    """An item whose newest version was proposed `minute` minutes after START."""
    item = make_item(session, tenant_id, kind=kind, scope=scope, scope_ref=scope_ref)
    version = make_version(
        session, item, text, state=state, findings=findings, created_at=START + timedelta(minutes=minute)
    )
    return item, version


def texts(session: Session, filters: QueueFilters, caller: Caller | None = None) -> list[str]:
    """The newest texts of the memories `filters` find, oldest first."""
    query = filtered(filters, caller=caller).order_by(MemoryVersion.created_at)
    return [version.text for _, version in session.exec(query).all()]


def caller(tenant_id: uuid.UUID, role: Role) -> Caller:
    return Caller(principal_id=uuid.uuid4(), tenant_id=tenant_id, name=role.value, role=role)


def test_the_queue_filters_by_state_and_kind(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Waiting fact.", minute=1)
        memory(session, tenant_id, "Waiting procedure.", minute=2, kind=MemoryKind.procedure)
        memory(session, tenant_id, "Approved fact.", minute=3, state=VersionState.approved)
        memory(session, tenant_id, "Due again.", minute=4, state=VersionState.needs_recertification)
        assert texts(session, QueueFilters()) == ["Waiting fact.", "Waiting procedure."]
        assert texts(session, QueueFilters(state="approved")) == ["Approved fact."]
        assert texts(session, QueueFilters(state="")) == [
            "Waiting fact.",
            "Waiting procedure.",
            "Approved fact.",
            "Due again.",
        ]
        assert texts(session, QueueFilters(kind="procedure")) == ["Waiting procedure."]
        assert texts(session, QueueFilters(state="", kind="fact", scope="tenant")) == [
            "Waiting fact.",
            "Approved fact.",
            "Due again.",
        ]


def test_only_the_newest_version_of_an_item_is_queued(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        item = make_item(session, tenant_id)
        make_version(session, item, "Old text.", state=VersionState.approved, created_at=START)
        make_version(
            session,
            item,
            "New text.",
            state=VersionState.in_review,
            number=2,
            created_at=START + timedelta(minutes=1),
        )
        assert texts(session, QueueFilters(state="")) == ["New text."]
        assert texts(session, QueueFilters(state="approved")) == []


@pytest.mark.parametrize("flag", FLAGS)
def test_the_queue_filters_by_each_flag(database: Database, tenant_id: uuid.UUID, flag: str) -> None:
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Flagged.", minute=1, findings={flag: [{"why": "test"}]})
        memory(session, tenant_id, "Clean.", minute=2)
        other = next(f for f in FLAGS if f != flag)
        memory(session, tenant_id, "Flagged otherwise.", minute=3, findings={other: [{"why": "test"}]})
        assert texts(session, QueueFilters(flag=flag)) == ["Flagged."]
        rows, count = list_queue(session, filters=QueueFilters())
        assert count == 3
        assert {row.version.text: row.flags for row in rows} == {
            "Flagged.": [flag],
            "Clean.": [],
            "Flagged otherwise.": [other],
        }


def test_a_memory_whose_source_changed_is_found_by_that_flag(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        memory(
            session,
            tenant_id,
            "Stale.",
            minute=1,
            findings={
                "source_changed": [
                    {"document_id": str(uuid.uuid4()), "latest_version": 2, "why": "moved on"}
                ],
                "suggestion": "supersede",
            },
        )
        memory(session, tenant_id, "Merge me.", minute=2, findings={"suggestion": "merge"})
        assert texts(session, QueueFilters.parse({"flag": "source_changed"})) == ["Stale."]
        rows, _ = list_queue(session, filters=QueueFilters())
        assert [row.flags for row in rows] == [["source_changed"], []]  # a suggestion is no flag


def test_a_collection_finds_its_scope_and_the_memories_its_documents_evidence(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Scoped to HR.", minute=1, scope=MemoryScope.collection, scope_ref="hr")
        memory(
            session,
            tenant_id,
            "Scoped to finance.",
            minute=2,
            scope=MemoryScope.collection,
            scope_ref="finance",
        )
        quoted = "Leave requests go through the HR portal."
        _, evidenced = memory(session, tenant_id, quoted, minute=3)
        document = make_document(session, tenant_id, collection="hr", title="Leave")
        quote_evidence(session, evidenced, document, add_document_version(session, document, quoted), quoted)
        handbook = make_document(session, tenant_id, collection="hr", title="Handbook")
        quote_evidence(session, evidenced, handbook, add_document_version(session, handbook, quoted), quoted)
        other = "Invoices are paid within thirty days."
        _, elsewhere = memory(session, tenant_id, other, minute=4)
        ledger = make_document(session, tenant_id, collection="finance", title="Ledger")
        quote_evidence(session, elsewhere, ledger, add_document_version(session, ledger, other), other)
        memory(session, tenant_id, "Tenant-wide, no evidence.", minute=5)

        assert texts(session, QueueFilters(collection="hr")) == ["Scoped to HR.", quoted]
        assert texts(session, QueueFilters(collection="finance")) == ["Scoped to finance.", other]
        assert texts(session, QueueFilters(collection="legal")) == []
        rows, count = list_queue(session, filters=QueueFilters(collection="hr"))
        assert count == 2  # two pieces of evidence from the collection: one memory
        assert [row.collections for row in rows] == [[], ["hr"]]


def test_the_queue_is_oldest_first_in_pages(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        for minute in (5, 1, 4, 2, 3):
            memory(session, tenant_id, f"Proposed at minute {minute}.", minute=minute)
        rows, count = list_queue(session, filters=QueueFilters(), limit=2)
        assert count == 5
        assert [row.version.text for row in rows] == ["Proposed at minute 1.", "Proposed at minute 2."]
        rows, count = list_queue(session, filters=QueueFilters(offset=4), limit=2)
        assert count == 5 and [row.version.text for row in rows] == ["Proposed at minute 5."]


def test_neighbours_move_through_the_queue_one_by_one(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        first, _ = memory(session, tenant_id, "First.", minute=1)
        second, _ = memory(session, tenant_id, "Second.", minute=2)
        third, _ = memory(session, tenant_id, "Third.", minute=3)
        decided, _ = memory(session, tenant_id, "Decided.", minute=4, state=VersionState.approved)
        filters = QueueFilters()
        assert neighbours(session, filters=filters, item_id=first.id) == (None, second.id)
        assert neighbours(session, filters=filters, item_id=second.id) == (first.id, third.id)
        assert neighbours(session, filters=filters, item_id=third.id) == (second.id, None)
        # An item the queue does not hold (decided meanwhile): the next is the queue's first.
        assert neighbours(session, filters=filters, item_id=decided.id) == (None, first.id)
        assert neighbours(session, filters=QueueFilters(kind="episode"), item_id=first.id) == (None, None)


def test_below_the_reviewer_role_nobody_sees_another_persons_memories(
    database: Database, tenant_id: uuid.UUID
) -> None:
    reader, colleague = caller(tenant_id, Role.reader), caller(tenant_id, Role.contributor)
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Tenant-wide.", minute=1)
        memory(session, tenant_id, "For HR readers.", minute=2, scope=MemoryScope.collection, scope_ref="hr")
        mine = str(reader.principal_id)
        memory(session, tenant_id, "The reader's own.", minute=3, scope=MemoryScope.user, scope_ref=mine)
        theirs = str(colleague.principal_id)
        memory(session, tenant_id, "The colleague's own.", minute=4, scope=MemoryScope.user, scope_ref=theirs)
        memory(
            session, tenant_id, "The travel bot's.", minute=5, scope=MemoryScope.agent, scope_ref="travel-bot"
        )
        everything = QueueFilters(state="")

        assert texts(session, everything, reader) == ["Tenant-wide.", "For HR readers.", "The reader's own."]
        assert texts(session, everything, colleague) == [
            "Tenant-wide.",
            "For HR readers.",
            "The colleague's own.",
        ]
        # Asking for user scope, or by flag or collection, does not widen it.
        assert texts(session, QueueFilters(state="", scope="user"), reader) == ["The reader's own."]
        reviewer = caller(tenant_id, Role.reviewer)
        assert len(texts(session, everything, reviewer)) == 5
        assert len(texts(session, everything)) == 5  # no caller: the queue's own (reviewers') view


def test_filters_from_query_parameters_drop_what_the_queue_does_not_know() -> None:
    parsed = QueueFilters.parse(
        {
            "state": "approved",
            "kind": "procedure",
            "flag": "source_changed",
            "collection": "hr",
            "offset": "50",
        }
    )
    assert parsed == QueueFilters(
        state="approved", kind="procedure", flag="source_changed", collection="hr", offset=50
    )
    junk = QueueFilters.parse(
        {"state": "deleted", "kind": "rumour", "flag": "suggestion", "offset": "-3", "collection": "x" * 300}
    )
    assert junk == QueueFilters(state="", kind="", flag="", collection="x" * 200, offset=0)
    assert QueueFilters.parse({"offset": "ten"}).offset == 0
    assert QueueFilters.parse({}) == QueueFilters()
    assert QueueFilters(flag="secrets").query_string(offset=50) == "state=in_review&flag=secrets&offset=50"
    assert QueueFilters(state="").query_string() == "state="


def test_a_decided_task_not_yet_applied_is_pending(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        versions = []
        for minute, status in enumerate(("decided", "open", "none")):
            run = Run(tenant_id=tenant_id, program="memory.review", program_version=1, input={})
            session.add(run)
            session.flush()
            _, version = memory(session, tenant_id, f"Task {status}.", minute=minute)
            version.run_id = run.id
            session.add(version)
            if status != "none":
                session.add(
                    HumanTask(
                        tenant_id=tenant_id,
                        run_id=run.id,
                        seq=1,
                        title="Review",
                        role="reviewer",
                        signal_name="task",
                        status="decided" if status == "decided" else "open",
                        decision={"decision": "approve"} if status == "decided" else None,
                    )
                )
            versions.append(version)
        session.flush()
        decided = versions[0]
        assert pending_decisions(session, versions) == {decided.id: "approve"}
        rows, _ = list_queue(session, filters=QueueFilters())
        assert [row.pending for row in rows] == ["approve", None, None]
        # Once the worker moved the version on, nothing is pending.
        decided.state = VersionState.approved
        assert pending_decisions(session, versions) == {}


def test_the_queue_filters_by_source_document(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        handbook = make_document(session, tenant_id, title="Handbook")
        ledger = make_document(session, tenant_id, title="Ledger")
        for document, text in (
            (handbook, "Holidays are 27 days."),
            (ledger, "Invoices are paid in 30 days."),
        ):
            _, version = memory(session, tenant_id, text, minute=1)
            quote_evidence(session, version, document, add_document_version(session, document, text), text)
        memory(session, tenant_id, "No document.", minute=2)
        assert texts(session, QueueFilters(document=str(handbook.id))) == ["Holidays are 27 days."]
        assert texts(session, QueueFilters.parse({"document": str(ledger.id)})) == [
            "Invoices are paid in 30 days."
        ]
        assert QueueFilters.parse({"document": "not-an-id"}).document == ""


def test_the_queue_searches_the_words_of_the_text(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Every full-time employee has 27 days of paid holiday.", minute=1)
        memory(session, tenant_id, "Holiday requests go through the leave app.", minute=2)
        memory(session, tenant_id, "Discounts of 100% need approval_by_finance.", minute=3)
        assert texts(session, QueueFilters(q="holiday")) == [
            "Every full-time employee has 27 days of paid holiday.",
            "Holiday requests go through the leave app.",
        ]
        assert texts(session, QueueFilters(q="HOLIDAY 27")) == [
            "Every full-time employee has 27 days of paid holiday."
        ]
        # Wildcards are plain characters.
        assert texts(session, QueueFilters(q="100%")) == ["Discounts of 100% need approval_by_finance."]
        assert texts(session, QueueFilters(q="%")) == ["Discounts of 100% need approval_by_finance."]
        assert texts(session, QueueFilters(q="a_p")) == []
        assert QueueFilters.parse({"q": "  paid   holiday "}).q == "paid holiday"


def test_the_queue_sorts_by_age_or_by_the_most_serious_finding(
    database: Database, tenant_id: uuid.UUID
) -> None:
    def listed(sort: str) -> list[str]:
        rows, _ = list_queue(session, filters=QueueFilters(sort=sort))
        return [row.version.text for row in rows]

    stale = {"source_changed": [{"document_id": str(uuid.uuid4()), "latest_version": 2, "why": "moved"}]}
    near = {"near_duplicate_of": [{"version_id": str(uuid.uuid4()), "item_id": str(uuid.uuid4())}]}
    with database.tenant_session(tenant_id) as session:
        memory(session, tenant_id, "Clean.", minute=1)
        memory(session, tenant_id, "Near.", minute=2, findings=near)
        memory(session, tenant_id, "Injected.", minute=3, findings={"injection": {"why": "x"}})
        memory(session, tenant_id, "Stale.", minute=4, findings=stale)
        assert listed("") == ["Clean.", "Near.", "Injected.", "Stale."]
        assert listed("newest") == ["Stale.", "Injected.", "Near.", "Clean."]
        assert listed("finding") == ["Injected.", "Stale.", "Near.", "Clean."]
        first, _ = neighbours(
            session, filters=QueueFilters(sort="finding"), item_id=rows_item(session, "Stale.")
        )
        assert first == rows_item(session, "Injected.")
        assert QueueFilters.parse({"sort": "random"}).sort == ""


def rows_item(session: Session, text: str) -> uuid.UUID:
    rows, _ = list_queue(session, filters=QueueFilters(state=""))
    return next(row.item.id for row in rows if row.version.text == text)


def test_decided_by_shows_who_decided_and_finds_a_persons_decisions(
    database: Database, tenant_id: uuid.UUID
) -> None:
    from quire.memory import audit

    rita, sam = str(uuid.uuid4()), str(uuid.uuid4())
    with database.tenant_session(tenant_id) as session:
        for minute, (text, actor, state) in enumerate(
            (
                ("Rejected by Rita.", rita, "rejected"),
                ("Approved by Sam.", sam, "approved"),
                ("Open.", "", ""),
            )
        ):
            item, version = memory(
                session, tenant_id, text, minute=minute, state=VersionState(state or "in_review")
            )
            audit.record(
                session,
                tenant_id=tenant_id,
                type="memory.proposed",
                actor="extractor:rules",
                item_id=item.id,
                version_id=version.id,
            )
            if actor:
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    type=f"memory.{state}",
                    actor=actor,
                    item_id=item.id,
                    version_id=version.id,
                )
        rows, _ = list_queue(session, filters=QueueFilters(state=""))
        by_text = {row.version.text: row.decided for row in rows}
        assert by_text["Open."] is None
        rejected = by_text["Rejected by Rita."]
        assert rejected is not None and (rejected.actor, rejected.decision) == (rita, "rejected")
        assert texts(session, QueueFilters(state="", decided_by=rita)) == ["Rejected by Rita."]
        assert texts(session, QueueFilters.parse({"state": "", "decided_by": sam})) == ["Approved by Sam."]
        assert QueueFilters.parse({"decided_by": "me"}).decided_by == ""


def test_new_filters_survive_the_query_string() -> None:
    document = str(uuid.uuid4())
    filters = QueueFilters(document=document, q="paid holiday", sort="finding", flag="conflicts_with")
    assert QueueFilters.parse(dict(parse_qsl(filters.query_string()))) == filters
    assert QueueFilters(state="").query_string() == "state="
