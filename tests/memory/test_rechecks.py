"""Checks that stay current (memory/rechecks.py): an open version's findings are computed again
when a memory it is compared with moves, and when a document it quotes gets a new version."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from quire.core.db import Database
from quire.core.models import Role, Tenant
from quire.memory.checks import run_checks
from quire.memory.findings import Findings
from quire.memory.models import MemoryEvent, MemoryItem, MemoryVersion, VersionState
from quire.memory.rechecks import after_document_version, after_move, recheck
from tests.harness import Harness
from tests.memory.test_checks import (
    add_document_version,
    make_document,
    make_item,
    make_version,
    quote_evidence,
)
from tests.memory.test_lifecycle import by_text, ingest, keys, memories

SLOT = "holidays: full-time employee days paid holiday calendar year"
OLD = "Every full-time employee has 25 days of paid holiday per calendar year."
NEW = "Every full-time employee has 27 days of paid holiday per calendar year."


@pytest.fixture
def tenant_id(database: Database) -> uuid.UUID:
    """A tenant of this test alone (rolled back with everything else)."""
    with database.system_session() as session:
        tenant = Tenant(name=f"unit-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    return tenant.id


def checked_in_review(session: Session, item: MemoryItem, text: str) -> MemoryVersion:
    """A version in review whose findings are what its checks found when it was proposed."""
    version = make_version(session, item, text, state=VersionState.in_review)
    version.findings = run_checks(session, version=version, item=item)
    session.add(version)
    session.flush()
    return version


def move(session: Session, version: MemoryVersion, to: VersionState) -> list[MemoryVersion]:
    """What the lifecycle does on each move: the new state, then the checks it affects."""
    before = version.state
    version.state = to
    session.add(version)
    session.flush()
    return after_move(session, version=version, before=before)


def findings_of(session: Session, version: MemoryVersion) -> Findings:
    session.refresh(version)
    return Findings.of(version.findings)


def events_of(session: Session, version: MemoryVersion) -> list[MemoryEvent]:
    return list(
        session.exec(
            select(MemoryEvent).where(MemoryEvent.version_id == version.id).order_by(col(MemoryEvent.seq))
        ).all()
    )


def test_approving_a_memory_flags_the_open_proposals_of_its_slot(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        stale = checked_in_review(session, make_item(session, tenant_id, subject_key=SLOT), OLD)
        assert stale.findings == {}  # nothing was approved when it was checked
        fresh_item = make_item(session, tenant_id, subject_key=SLOT)
        fresh = make_version(session, fresh_item, NEW, state=VersionState.in_review)

        assert move(session, fresh, VersionState.approved) == [stale]
        found = findings_of(session, stale)
        assert found.conflicts_with is not None
        assert [(r.item_id, r.text) for r in found.conflicts_with] == [(fresh_item.id, NEW)]
        assert found.suggestion == "supersede"
        [event] = events_of(session, stale)
        assert event.type == "memory.flagged" and event.actor == "system"
        assert event.reason == "An approved memory about the same subject says otherwise."
        assert event.data["added"] == ["conflicts_with"] and event.data["removed"] == []


@pytest.mark.parametrize(
    "ended", [VersionState.superseded, VersionState.withdrawn, VersionState.expired, VersionState.retracted]
)
def test_a_memory_leaving_effect_clears_the_conflict_it_caused(
    database: Database, tenant_id: uuid.UUID, ended: VersionState
) -> None:
    with database.tenant_session(tenant_id) as session:
        approved = make_version(session, make_item(session, tenant_id, subject_key=SLOT), NEW)
        proposal = checked_in_review(session, make_item(session, tenant_id, subject_key=SLOT), OLD)
        assert findings_of(session, proposal).conflicts_with

        assert move(session, approved, ended) == [proposal]
        assert findings_of(session, proposal).present() == []
        assert findings_of(session, proposal).suggestion is None
        assert events_of(session, proposal)[-1].type == "memory.rechecked"
        assert events_of(session, proposal)[-1].data["removed"] == ["conflicts_with"]


def test_rejecting_one_of_two_twins_clears_the_others_duplicate_finding(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        first = checked_in_review(session, make_item(session, tenant_id), NEW)
        second = checked_in_review(session, make_item(session, tenant_id), NEW)
        assert findings_of(session, second).duplicate_of

        move(session, first, VersionState.rejected)
        assert findings_of(session, second).duplicate_of is None


def test_approving_one_of_two_twins_turns_the_others_recommendation_to_merge(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        first = checked_in_review(session, make_item(session, tenant_id), NEW)
        second = checked_in_review(session, make_item(session, tenant_id), NEW)
        assert findings_of(session, second).suggestion is None  # "approve": nothing decided yet

        move(session, first, VersionState.approved)
        found = findings_of(session, second)
        assert found.duplicate_of is not None and found.duplicate_of[0].state == "approved"
        assert found.suggestion == "merge"


def test_an_edit_is_a_move_the_other_checks_follow(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        edited_item = make_item(session, tenant_id)
        edited = checked_in_review(session, edited_item, NEW)
        twin = checked_in_review(session, make_item(session, tenant_id), NEW)
        assert findings_of(session, twin).duplicate_of

        # The reviewer's edit closes the version (its edited copy is checked as a proposal).
        move(session, edited, VersionState.edited)
        assert findings_of(session, twin).duplicate_of is None


def test_decided_versions_keep_the_findings_they_were_decided_with(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        rejected = make_version(
            session, make_item(session, tenant_id, subject_key=SLOT), OLD, state=VersionState.rejected
        )
        fresh = make_version(
            session, make_item(session, tenant_id, subject_key=SLOT), NEW, state=VersionState.in_review
        )
        assert move(session, fresh, VersionState.approved) == []
        assert findings_of(session, rejected).present() == []
        assert events_of(session, rejected) == []


def test_a_version_submitted_for_review_changes_nothing_else(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        twin = checked_in_review(session, make_item(session, tenant_id), NEW)
        version = make_version(session, make_item(session, tenant_id), NEW, state=VersionState.checked)
        # Only itself is checked again: made here without its check, it finds its twin now.
        assert move(session, version, VersionState.in_review) == [version]
        assert findings_of(session, twin).present() == []


def test_checking_again_what_did_not_change_records_nothing(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        proposal = checked_in_review(session, make_item(session, tenant_id, subject_key=SLOT), OLD)
        assert recheck(session, version_ids=[proposal.id], because="a test") == []
        assert events_of(session, proposal) == []


def test_a_new_document_version_flags_the_open_proposals_that_quote_it(
    database: Database, tenant_id: uuid.UUID
) -> None:
    kept = uuid.uuid4()
    portal = "Employees must book flights through the travel portal."
    with database.tenant_session(tenant_id) as session:
        document = make_document(session, tenant_id, title="Handbook")
        first = add_document_version(session, document, portal, OLD, element_ids=[None, kept])
        stale = checked_in_review(session, make_item(session, tenant_id, subject_key=SLOT), OLD)
        quote_evidence(session, stale, document, first, OLD, element_id=kept)
        still = checked_in_review(session, make_item(session, tenant_id), portal)
        quote_evidence(session, still, document, first, portal)
        approved = make_version(session, make_item(session, tenant_id), OLD + " Approved.")
        quote_evidence(session, approved, document, first, OLD)

        add_document_version(session, document, portal, NEW, element_ids=[None, kept])
        assert after_document_version(session, document_id=document.id, number=2) == [stale]
        found = findings_of(session, stale)
        assert found.source_changed is not None
        [source] = found.source_changed
        assert (source.latest_version, source.element_id, source.passage) == (2, kept, NEW)
        assert found.suggestion == "reject"
        [event] = events_of(session, stale)
        assert (
            event.type == "memory.flagged" and event.reason == "version 2 of its document no longer says this"
        )
        assert findings_of(session, still).present() == []
        # An approved memory is not a proposal: the lifecycle sends it back to review instead.
        assert findings_of(session, approved).present() == []


# Through the API, the lifecycle and the ingestion's follow-up, as in the demo's handbook.

HANDBOOK = """# Handbook

## Holidays

Every full-time employee has 25 days of paid holiday per calendar year, plus public holidays.

Holiday requests go through the leave app.
"""


def test_the_stale_proposal_of_a_first_version_is_flagged_and_stays_current(
    api: TestClient, content: Harness
) -> None:
    key = keys(content)
    ingest(api, content, key[Role.contributor], HANDBOOK, name="handbook.md")
    ingest(api, content, key[Role.contributor], HANDBOOK.replace("25 days", "27 days"), name="handbook.md")
    waiting = memories(api, key[Role.reviewer], state="in_review")
    stale, fresh = by_text(waiting, "25 days"), by_text(waiting, "27 days")
    assert stale["subject_key"] == fresh["subject_key"]  # figures leave the slot alone
    [source] = stale["latest"]["findings"]["source_changed"]
    assert source["latest_version"] == 2 and "27 days" in source["passage"]
    assert source["element_id"] == fresh["latest"]["evidence"][0]["element_id"]  # the new passage
    assert "conflicts_with" not in stale["latest"]["findings"]

    # The new figure is approved: the stale proposal now conflicts with it, and is still to reject.
    approved = api.post(
        f"/v1/memories/{fresh['id']}/review", json={"decision": "approve"}, headers=key[Role.reviewer]
    )
    assert approved.status_code == 202, approved.text
    content.drive()
    findings = api.get(f"/v1/memories/{stale['id']}", headers=key[Role.reviewer]).json()["latest"]["findings"]
    assert findings["conflicts_with"][0]["item_id"] == fresh["id"]
    assert findings["suggestion"] == "reject"

    # Withdrawn again: the conflict goes; what the document says now stays.
    withdrawn = api.delete(
        f"/v1/memories/{fresh['id']}", params={"reason": "wrong"}, headers=key[Role.reviewer]
    )
    assert withdrawn.status_code == 202, withdrawn.text
    content.drive()
    detail = api.get(f"/v1/memories/{stale['id']}", headers=key[Role.reviewer]).json()
    assert set(detail["latest"]["findings"]) == {"source_changed", "suggestion"}
    flagged = [e for e in detail["events"] if e["type"] in ("memory.flagged", "memory.rechecked")]
    # (27 and 25 days read nearly the same: the approved one is a near duplicate as well.)
    assert [set(e["data"]["added"]) for e in flagged] == [
        {"source_changed"},
        {"conflicts_with", "near_duplicate_of"},
        set(),
    ]
    assert set(flagged[-1]["data"]["removed"]) == {"conflicts_with", "near_duplicate_of"}
