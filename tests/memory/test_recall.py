"""No leakage: over many generated memories in every state, scope and tenant, recall returns only
approved versions, in effect and valid now, in the caller's scopes and tenant."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.models import EvidenceIn, MemoryProposal, MemoryScope, ReviewDecision
from quire.memory.proposals import propose
from quire.memory.recall import Reader, recall
from quire.memory.reviews import review
from tests.core.search.test_lexemes import HOSTILE_QUERIES
from tests.harness import Harness, make_harness

TOPICS = ["parking permits", "travel booking", "laptop refresh", "holiday requests", "expense receipts"]
ALICE, BOB = uuid.uuid4(), uuid.uuid4()
SCOPES = [
    (MemoryScope.tenant, None),
    (MemoryScope.collection, "finance"),
    (MemoryScope.collection, "legal"),
    (MemoryScope.user, str(ALICE)),
    (MemoryScope.user, str(BOB)),
    (MemoryScope.agent, "helpdesk"),
    (MemoryScope.agent, "sales"),
]
OUTCOMES = ["approve", "reject", "pending", "withdraw", "future", "expired", "supersede"]


def reviewer(harness: Harness) -> Caller:
    return Caller(principal_id=uuid.uuid4(), tenant_id=harness.tenant_id, name="rev", role=Role.reviewer)


def run_id_evidence(harness: Harness) -> EvidenceIn:
    from tests.runtime.test_waits import Inbox

    return EvidenceIn(run_id=harness.start("test.inbox", Inbox()), note="generated")


def populate(harness: Harness, rng: random.Random, count: int) -> None:
    now = datetime.now(UTC)
    evidence = run_id_evidence(harness)
    plans = []
    with harness.database.tenant_session(harness.tenant_id) as session:
        for n in range(count):
            scope, ref = rng.choice(SCOPES)
            outcome = rng.choice(OUTCOMES)
            topic = rng.choice(TOPICS)
            valid_from = now + timedelta(days=30) if outcome == "future" else None
            valid_to = now + timedelta(seconds=1) if outcome == "expired" else None
            item, _version = propose(
                session,
                tenant_id=harness.tenant_id,
                proposal=MemoryProposal(
                    text=f"Rule {n} about {topic}: outcome {outcome}.",
                    scope=scope,
                    scope_ref=ref,
                    subject_key=f"slot {n}",
                    valid_from=valid_from,
                    valid_to=valid_to,
                    evidence=[evidence],
                ),
                proposed_by="test",
                kicker=harness.kicker,
            )
            plans.append((item.id, outcome, scope, ref))
        session.commit()
    harness.drive()
    decider = reviewer(harness)
    for item_id, outcome, _, _ in plans:
        with harness.database.tenant_session(harness.tenant_id) as session:
            if outcome in ("approve", "withdraw", "future", "expired", "supersede"):
                review(
                    session,
                    item_id=item_id,
                    decision=ReviewDecision(decision="approve"),
                    caller=decider,
                    kicker=harness.kicker,
                )
            elif outcome == "reject":
                review(
                    session,
                    item_id=item_id,
                    decision=ReviewDecision(decision="reject", reason="no"),
                    caller=decider,
                    kicker=harness.kicker,
                )
            session.commit()
    harness.drive()
    for item_id, outcome, scope, ref in plans:
        with harness.database.tenant_session(harness.tenant_id) as session:
            if outcome == "withdraw":
                review(
                    session,
                    item_id=item_id,
                    decision=ReviewDecision(decision="withdraw", reason="old"),
                    caller=decider,
                    kicker=harness.kicker,
                )
            elif outcome == "supersede":
                _newer, _ = propose(
                    session,
                    tenant_id=harness.tenant_id,
                    proposal=MemoryProposal(
                        text=f"Replacement for {item_id}",
                        scope=scope,
                        scope_ref=ref,
                        item_id=item_id,
                        evidence=[evidence],
                    ),
                    proposed_by="test",
                    kicker=harness.kicker,
                )
            session.commit()
    harness.drive(until=1.5)  # expiry timers fire
    with harness.database.tenant_session(harness.tenant_id) as session:
        pending = session.execute(
            text(
                "SELECT v.id FROM memory_version v "
                "WHERE v.text LIKE 'Replacement for %' AND v.state = 'in_review'"
            )
        ).all()
    for (version_id,) in pending:
        with harness.database.tenant_session(harness.tenant_id) as session:
            item_id = session.execute(
                text("SELECT item_id FROM memory_version WHERE id = :v"), {"v": version_id}
            ).scalar_one()
            review(
                session,
                item_id=item_id,
                decision=ReviewDecision(decision="approve", version_id=version_id),
                caller=decider,
                kicker=harness.kicker,
            )
            session.commit()
    harness.drive(until=1.0)


def allowed(scope: str, ref: str | None, reader: Reader) -> bool:
    if scope == "tenant":
        return True
    if scope == "collection":
        return not reader.collections or ref in reader.collections
    if scope == "user":
        return ref == str(reader.principal_id)
    return scope == "agent" and ref == reader.agent


@pytest.mark.parametrize("seed", [1, 2])
def test_recall_never_leaks(content: Harness, content_database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    populate(content, rng, 45)
    with make_harness(content_database_url) as stranger:  # another tenant with lookalike memories
        populate(stranger, random.Random(seed + 100), 15)
        readers = [
            Reader(principal_id=ALICE, agent="helpdesk"),
            Reader(principal_id=BOB, agent=None, collections=("legal",)),
            Reader(principal_id=uuid.uuid4(), agent="sales", collections=("finance",)),
        ]
        now = datetime.now(UTC)
        seen = 0
        with content.database.tenant_session(content.tenant_id) as session:
            for reader in readers:
                for query in [*TOPICS, "rule outcome", "replacement"]:
                    for hit in recall(
                        session, query=query, reader=reader, embedder=content.services.content.embedder, k=50
                    ).hits:
                        row = session.execute(
                            text(
                                "SELECT v.state, v.tenant_id, i.scope, i.scope_ref, v.valid_from, "
                                "v.valid_to, v.ended_at "
                                "FROM memory_version v JOIN memory_item i ON i.id = v.item_id WHERE v.id = :v"
                            ),
                            {"v": hit.version_id},
                        ).one()
                        state, tenant_id, scope, ref, valid_from, valid_to, ended_at = row
                        assert state == "approved", (hit.text, state)
                        assert tenant_id == content.tenant_id
                        assert ended_at is None and valid_from <= now and (valid_to is None or valid_to > now)
                        assert allowed(scope, ref, reader), (hit.text, scope, ref, reader)
                        seen += 1
        assert seen > 20, "the property must be exercised on real hits"
        with content.database.tenant_session(content.tenant_id) as session:
            states = {row[0] for row in session.execute(text("SELECT DISTINCT state FROM memory_version"))}
        assert {"approved", "rejected", "in_review", "withdrawn", "expired", "superseded"} <= states


def test_any_query_text_recalls_without_an_error(content: Harness) -> None:
    populate(content, random.Random(7), 10)
    with content.database.tenant_session(content.tenant_id) as session:
        for query in [*HOSTILE_QUERIES, "lone \ud800 surrogate"]:
            recall(
                session,
                query=query,
                reader=Reader(principal_id=ALICE),
                embedder=content.services.content.embedder,
            )
