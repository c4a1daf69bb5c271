"""Conversations as memory: turns become dated, attributed episodes that recall understands."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from pytest import approx
from sqlalchemy import text
from sqlmodel import select

from quire.content.indexing import publish_version
from quire.content.ingestion import write_elements
from quire.content.models import Document, Version
from quire.content.transcripts import TURN
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.conversations import (
    Episode,
    favour_named_speaker,
    lift_neighbours,
    propose_episodes,
)
from quire.memory.models import Evidence, MemoryItem, MemoryVersion, ReviewDecision
from quire.memory.programs import OnVersion
from quire.memory.recall import Reader, recall
from quire.memory.reviews import review
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

MAY_8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
MAY_25 = datetime(2023, 5, 25, 13, 14, tzinfo=UTC)
CHAT = [
    (1, MAY_8, "Melanie", "Hey Caroline! Did you end up going to the support group?"),
    (1, MAY_8, "Caroline", "Yes, I went yesterday and it was so powerful."),
    (1, MAY_8, "Melanie", "I love painting sunsets with the kids on weekends."),
    (1, MAY_8, "Caroline", "I love painting too, mostly portraits of my friends."),
    (2, MAY_25, "Melanie", "We ran a charity race for mental health last Sunday."),
    (2, MAY_25, "Caroline", "That's amazing, Mel! Proud of you."),
]


@dataclass(frozen=True)
class Turn:
    text: str
    metadata: dict[str, object]
    type: str = TURN
    html: str | None = None
    page: int | None = None
    section_path: tuple[str, ...] = field(default_factory=tuple)


def turns(chat: list[tuple[int, datetime, str, str]]) -> list[Turn]:
    return [
        Turn(words, {"speaker": who, "session": n, "session_date": when.isoformat(), "turn_id": f"D{n}:{i}"})
        for i, (n, when, who, words) in enumerate(chat, 1)
    ]


def add_version(
    harness: Harness, chat: list[tuple[int, datetime, str, str]], document_id: uuid.UUID | None
) -> uuid.UUID:
    with harness.database.tenant_session(harness.tenant_id) as session:
        if document_id is None:
            document = Document(
                tenant_id=harness.tenant_id, collection="chats", source_key="chat", title="Chat"
            )
            session.add(document)
            session.flush()
            number = 1
        else:
            found = session.get(Document, document_id)
            assert found is not None
            document = found
            number = document.version_count + 1
        version = Version(
            tenant_id=harness.tenant_id,
            document_id=document.id,
            number=number,
            sha256=f"{number}" * 64,
            size_bytes=1,
            filename="chat.json",
            content_type="application/json",
            blob_key="0" * 64,
        )
        session.add(version)
        document.version_count = number
        session.add(document)
        session.flush()
        write_elements(session, version, turns(chat))
        session.flush()
        publish_version(session, version_id=version.id, model=harness.services.content.embedder.name)
        session.commit()
        return version.id


def approve_everything(harness: Harness) -> None:
    reviewer = Caller(principal_id=uuid.uuid4(), tenant_id=harness.tenant_id, name="rev", role=Role.reviewer)
    with harness.database.tenant_session(harness.tenant_id) as session:
        waiting = session.execute(text("SELECT item_id FROM memory_version WHERE state = 'in_review'")).all()
        for (item_id,) in waiting:
            review(
                session,
                item_id=item_id,
                decision=ReviewDecision(decision="approve"),
                caller=reviewer,
                kicker=harness.kicker,
            )
        session.commit()
    harness.drive()


def remember(harness: Harness) -> uuid.UUID:
    """The chat as a document; its episodes proposed by memory's program for new versions, then approved."""
    version_id = add_version(harness, CHAT, None)
    harness.start("memory.on-version", OnVersion(version_id=version_id))
    harness.drive()
    approve_everything(harness)
    return version_id


def top_quote(harness: Harness, query: str, **settings: float) -> str | None:
    with harness.database.tenant_session(harness.tenant_id) as session:
        hits = recall(
            session,
            query=query,
            reader=Reader(principal_id=None, collections=("chats",)),
            embedder=harness.services.content.embedder,
            k=3,
            **settings,  # type: ignore[arg-type]
        ).hits
    return hits[0].evidence[0].quote if hits else None


def transcript(chat: list[tuple[int, datetime, str, str]]) -> bytes:
    sessions: dict[int, dict[str, Any]] = {}
    for n, when, who, words in chat:
        sessions.setdefault(n, {"date": when.isoformat(), "turns": []})["turns"].append(
            {"speaker": who, "text": words}
        )
    return json.dumps({"transcript": {"sessions": list(sessions.values())}}).encode()


def test_an_uploaded_transcript_becomes_turns_then_episodes_in_review(
    api: TestClient, content: Harness
) -> None:
    contributor = auth(
        make_key(content.database, TenantFixture(id=content.tenant_id, name="t"), Role.contributor)
    )
    response = api.post(
        "/v1/documents",
        files={"file": ("chat.json", transcript(CHAT), "application/json")},
        data={"collection": "chats"},
        headers=contributor,
    )
    assert response.status_code == 202, response.text
    content.drive()
    document_id = response.json()["document_id"]
    version = api.get(f"/v1/documents/{document_id}/versions/1", headers=contributor).json()
    assert [(e["type"], e["section_path"]) for e in version["elements"]][:2] == [
        ("turn", ["Session 1"]),
        ("turn", ["Session 1"]),
    ]
    assert version["elements"][4]["metadata"] == {
        "speaker": "Melanie",
        "session": 2,
        "session_date": MAY_25.isoformat(),
    }
    with content.database.tenant_session(content.tenant_id) as session:
        proposed = session.exec(select(MemoryVersion)).all()
    # One episode per turn, each waiting for a reviewer; the document extractor leaves turns alone.
    assert sorted(v.extractor for v in proposed) == ["conversation"] * len(CHAT)
    assert {v.state.value for v in proposed} == {"in_review"}


def test_a_malformed_transcript_fails_with_the_turn_at_fault(api: TestClient, content: Harness) -> None:
    contributor = auth(
        make_key(content.database, TenantFixture(id=content.tenant_id, name="t"), Role.contributor)
    )
    broken = {
        "transcript": {
            "sessions": [{"date": "2023-05-08", "turns": [{"speaker": "Ann", "text": "Hi"}, {"text": "?"}]}]
        }
    }
    response = api.post(
        "/v1/documents",
        files={"file": ("broken.json", json.dumps(broken).encode(), "application/json")},
        headers=contributor,
    )
    content.drive()
    document = api.get(f"/v1/documents/{response.json()['document_id']}", headers=contributor).json()
    assert (document["versions"][0]["status"], document["versions"][0]["status_reason"]) == (
        "failed",
        "session 1, turn 2 has no `speaker`",
    )


def test_each_turn_becomes_a_dated_attributed_episode_quoting_the_turn(content: Harness) -> None:
    remember(content)
    with content.database.tenant_session(content.tenant_id) as session:
        rows = session.exec(
            select(MemoryVersion, MemoryItem)
            .join(MemoryItem, MemoryItem.id == MemoryVersion.item_id)  # type: ignore[arg-type]
            .order_by(text("(memory_version.data->>'position')::int"))
        ).all()
        assert [version.state.value for version, _ in rows] == ["approved"] * len(CHAT)
        version, item = rows[1]
        assert item.kind.value == "episode" and item.scope.value == "collection" and item.scope_ref == "chats"
        assert version.text == (
            "[8 May 2023] Caroline: Yes, I went yesterday and it was so powerful. "
            "(replying to Melanie: Hey Caroline! Did you end up going to the support group?)"
        )
        assert version.valid_from == MAY_8
        assert version.data["speaker"] == "Caroline" and version.data["session"] == 1
        assert version.data["turn_id"] == "D1:2"
        evidence = session.exec(select(Evidence).where(Evidence.version_id == version.id)).one()
        assert evidence.quote == "Yes, I went yesterday and it was so powerful."
        # A new session's first turn answers nobody.
        assert (
            rows[4][0].text == "[25 May 2023] Melanie: We ran a charity race for mental health last Sunday."
        )


def test_recall_finds_an_answer_through_the_question_it_answers(content: Harness) -> None:
    remember(content)
    assert top_quote(content, "When did Caroline go to the support group?") == (
        "Yes, I went yesterday and it was so powerful."
    )


def test_recall_favours_the_speaker_the_question_names(content: Harness) -> None:
    remember(content)
    for speaker, quote in (
        ("Melanie", "I love painting sunsets with the kids on weekends."),
        ("Caroline", "I love painting too, mostly portraits of my friends."),
    ):
        assert top_quote(content, f"What does {speaker} love painting?") == quote


def test_episodes_are_read_only_in_their_collection(content: Harness) -> None:
    remember(content)
    with content.database.tenant_session(content.tenant_id) as session:
        elsewhere = recall(
            session,
            query="charity race",
            reader=Reader(principal_id=None, collections=("other",)),
            embedder=content.services.content.embedder,
        )
    assert elsewhere.hits == []
    assert top_quote(content, "charity race") == "We ran a charity race for mental health last Sunday."


def test_a_longer_conversation_adds_episodes_for_its_new_turns_only(content: Harness) -> None:
    first = add_version(content, CHAT, None)
    with content.database.tenant_session(content.tenant_id) as session:
        assert (
            len(
                propose_episodes(
                    session,
                    version_id=first,
                    kicker=content.kicker,
                    embedder=content.services.content.embedder,
                )
            )
            == 6
        )
        document_id = session.get(Version, first).document_id  # type: ignore[union-attr]
        session.commit()
    later = [*CHAT, (2, MAY_25, "Melanie", "Thanks! Next we are going camping in June.")]
    second = add_version(content, later, document_id)
    with content.database.tenant_session(content.tenant_id) as session:
        added = propose_episodes(
            session, version_id=second, kicker=content.kicker, embedder=content.services.content.embedder
        )
        assert [v.text for v in added] == [
            "[25 May 2023] Melanie: Thanks! Next we are going camping in June. "
            "(replying to Caroline: That's amazing, Mel! Proud of you.)"
        ]
        assert added[0].embedding is not None
        session.commit()


def episodes(*rows: tuple[int, str]) -> dict[uuid.UUID, Episode]:
    """Consecutive turns of one conversation: (session, speaker) each."""
    return {
        uuid.UUID(int=n + 1): Episode("chat", session, n, speaker)
        for n, (session, speaker) in enumerate(rows)
    }


def test_neighbours_lift_a_turn_within_its_session_only() -> None:
    found = episodes((1, "Ann"), (1, "Bo"), (2, "Ann"))
    a, b, c = found
    lifted = lift_neighbours({a: 1.0, b: 0.0, c: 0.0}, found, weight=0.5)
    assert lifted == {a: 1.0, b: 0.5, c: 0.0}
    other = uuid.uuid4()  # not an episode: unchanged
    assert lift_neighbours({a: 1.0, other: 0.3}, {a: found[a]}, weight=0.5)[other] == 0.3


def test_a_named_speaker_gains_only_when_one_is_named() -> None:
    found = episodes((1, "Ann"), (1, "Bo"))
    a, b = found
    scores = {a: 0.5, b: 0.5}
    assert favour_named_speaker(scores, found, query="What did ann say?", boost=0.2) == {
        a: approx(0.6),
        b: 0.5,
    }
    assert favour_named_speaker(scores, found, query="What did Ann tell Bo?", boost=0.2) == scores
    assert favour_named_speaker(scores, found, query="What did they say?", boost=0.2) == scores
