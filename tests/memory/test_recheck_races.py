"""Checks that stay current when memory moves happen at once (memory/rechecks.py): two
transactions in two threads on the real database, each a move of one memory of the same slot,
ordered by the tenant's memory lock that moves take (`audit.serialise`). Whatever runs first,
the open version's findings end as its checks read the world both left behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlmodel import Session

from quire.memory import audit
from quire.memory.checks import run_checks
from quire.memory.findings import Findings
from quire.memory.models import MemoryItem, MemoryVersion, VersionState
from quire.memory.rechecks import after_document_version
from quire.memory.review_state import Review, move_version
from quire.runtime.process import Event
from tests.harness import Harness
from tests.memory.test_checks import (
    add_document_version,
    make_document,
    make_item,
    make_version,
    quote_evidence,
)

SLOT = "retention: sensor readings"
FOUR = "Sensor readings are kept for 4 years, then deleted."
FIVE = "Sensor readings are kept for 5 years, then deleted."


def waiting_for_the_memory_lock(session: Session) -> int:
    """How many transactions wait for a tenant's memory lock (an advisory lock) right now."""
    found = session.execute(
        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    ).scalar_one()
    return int(found)


class Queued:
    """Transactions started in threads while the test holds the tenant's memory lock, so that
    they queue for it in the order they were started; they run when the test lets go."""

    def __init__(self, content: Harness) -> None:
        self.content = content
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, work: Callable[[Session], object]) -> None:
        def run() -> None:
            try:
                with self.content.database.tenant_session(self.content.tenant_id) as session:
                    work(session)
                    session.commit()
            except BaseException as error:  # reported by the test, not lost in the thread
                self.errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        with self.content.database.system_session() as probe:
            deadline = time.monotonic() + 30
            while waiting_for_the_memory_lock(probe) < len(self.threads):
                assert not self.errors, self.errors
                assert time.monotonic() < deadline, "the transaction never reached the memory lock"
                time.sleep(0.02)

    def finish(self) -> None:
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), "a transaction is still waiting: a deadlock?"
        assert not self.errors, self.errors


@contextmanager
def queued(content: Harness) -> Iterator[Queued]:
    """Hold the tenant's memory lock while the block starts transactions, then let them run."""
    order = Queued(content)
    with content.database.tenant_session(content.tenant_id) as holder:
        audit.serialise(holder, tenant_id=content.tenant_id)
        yield order
        holder.rollback()
    order.finish()


def decide(
    version: MemoryVersion, item: MemoryItem, name: str, to: VersionState
) -> Callable[[Session], object]:
    review = Review(version_id=version.id, item_id=item.id)
    return lambda session: move_version(session, review, Event(name=name, actor="rita"), to)


def stored_and_current(content: Harness, version_id: uuid.UUID) -> tuple[Findings, Findings]:
    with content.database.tenant_session(content.tenant_id) as session:
        version = session.get(MemoryVersion, version_id)
        assert version is not None
        item = session.get(MemoryItem, version.item_id)
        assert item is not None
        return Findings.of(version.findings), Findings.of(run_checks(session, version=version, item=item))


@pytest.fixture
def slot(content: Harness) -> dict[str, tuple[MemoryVersion, MemoryItem]]:
    """Two memories of one slot, committed: "5 years" in review and "4 years" checked (its
    checks ran while nothing of the slot was approved), about to be submitted for review."""
    with content.database.tenant_session(content.tenant_id) as session:
        five_item = make_item(session, content.tenant_id, subject_key=SLOT)
        five = make_version(session, five_item, FIVE, state=VersionState.in_review)
        four_item = make_item(session, content.tenant_id, subject_key=SLOT)
        four = make_version(session, four_item, FOUR, state=VersionState.checked)
        session.commit()
        for row in (five_item, five, four_item, four):
            session.refresh(row)
            session.expunge(row)
    return {"five": (five, five_item), "four": (four, four_item)}


def test_a_proposal_submitted_while_its_slot_gains_an_approved_memory_is_flagged(
    content: Harness, slot: dict[str, tuple[MemoryVersion, MemoryItem]]
) -> None:
    (five, five_item), (four, four_item) = slot["five"], slot["four"]
    with queued(content) as order:
        order.start(decide(five, five_item, "approve", VersionState.approved))  # first in line
        order.start(decide(four, four_item, "submit", VersionState.in_review))  # holds "4 years"

    stored, current = stored_and_current(content, four.id)
    assert current.conflicts_with and current.conflicts_with[0].version_id == five.id
    assert stored == current


def test_a_new_document_version_and_an_approval_at_once_leave_the_findings_current(
    content: Harness, slot: dict[str, tuple[MemoryVersion, MemoryItem]]
) -> None:
    (five, five_item), (four, _) = slot["five"], slot["four"]
    with content.database.tenant_session(content.tenant_id) as session:
        document = make_document(session, content.tenant_id)
        first = add_document_version(session, document, FOUR)
        proposal = session.get(MemoryVersion, four.id)
        assert proposal is not None
        quote_evidence(session, proposal, document, first, FOUR)
        proposal.state = VersionState.in_review
        session.add(proposal)
        add_document_version(session, document, FOUR.replace("4 years", "6 years"))
        session.commit()
        document_id = document.id

    with queued(content) as order:
        order.start(decide(five, five_item, "approve", VersionState.approved))
        order.start(lambda session: after_document_version(session, document_id=document_id, number=2))

    stored, current = stored_and_current(content, four.id)
    assert current.source_changed and current.conflicts_with  # both moves are seen
    assert stored == current


def test_two_approvals_in_one_slot_at_once_leave_its_proposal_flagged_by_both(
    content: Harness, slot: dict[str, tuple[MemoryVersion, MemoryItem]]
) -> None:
    (five, five_item), (four, _) = slot["five"], slot["four"]
    with content.database.tenant_session(content.tenant_id) as session:
        six_item = make_item(session, content.tenant_id, subject_key=SLOT)
        six = make_version(session, six_item, FIVE.replace("5", "6"), state=VersionState.in_review)
        proposal = session.get(MemoryVersion, four.id)
        assert proposal is not None
        proposal.state = VersionState.in_review
        session.add(proposal)
        session.commit()
        session.refresh(six)
        session.refresh(six_item)

    with queued(content) as order:
        order.start(decide(five, five_item, "approve", VersionState.approved))
        order.start(decide(six, six_item, "keep_both", VersionState.approved))

    stored, current = stored_and_current(content, four.id)
    assert {ref.version_id for ref in current.conflicts_with or []} == {five.id, six.id}
    assert stored == current
