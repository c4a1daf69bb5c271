"""Conversations as memory: each turn of a conversation document becomes an episode.

A conversation is a document whose elements are turns (type "turn": an uploaded transcript, see
`quire.content.transcripts`). A turn's metadata says who spoke (`speaker`), in which session
(`session`, a number) and when (`session_date`, ISO 8601), and may carry the turn's own id
(`turn_id`). `memory.on-version` proposes the episodes of each new version.

Each turn becomes an episode memory whose text stands on its own: the session's date, the
speaker, the words, and the turn it answers,

    [8 May 2023] Caroline: Yes, I went last week! (replying to Melanie: Did you join the group?)

so that "when did Caroline join the group?" finds it by date, name and the words of the question
it answers. Its evidence is the turn alone (its element and its exact text). `data` keeps the
conversation, the turn's position, the speaker, the session and its date: recall uses them to
lift the neighbours of a good hit and the turns of the one speaker a question names.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.content.models import Document, Element
from quire.content.models import Version as DocumentVersion
from quire.content.service import hashes_seen_before
from quire.content.transcripts import TURN
from quire.core.embeddings import Embedder
from quire.memory.models import EvidenceIn, MemoryKind, MemoryProposal, MemoryScope, MemoryVersion
from quire.memory.proposals import propose
from quire.runtime.kicks import Kicker

EXTRACTOR = "conversation"
EXTRACTOR_VERSION = "1"
# Enough of the turn being answered to say what the answer is about, not so much that it
# outweighs the turn's own words.
CONTEXT_CHARS = 200


@dataclass(frozen=True)
class Turn:
    element_id: uuid.UUID
    position: int  # the element's place in its document
    speaker: str
    text: str
    session: int | None
    session_date: datetime | None
    turn_id: str | None

    @classmethod
    def from_element(cls, element: Element) -> Turn:
        meta = element.meta or {}
        session = meta.get("session")
        return cls(
            element_id=element.element_id,
            position=element.ord,
            speaker=str(meta.get("speaker") or "someone"),
            text=element.text,
            session=int(session) if session is not None else None,
            session_date=parse_date(meta.get("session_date")),
            turn_id=str(meta["turn_id"]) if meta.get("turn_id") is not None else None,
        )


def parse_date(value: object) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def shorten(words: str, limit: int) -> str:
    return words if len(words) <= limit else words[:limit].rsplit(" ", 1)[0] + " …"


def episode_text(turn: Turn, replying_to: Turn | None) -> str:
    """The memory's text: dated, attributed, and with the turn it answers."""
    day = f"[{turn.session_date.day} {turn.session_date:%B %Y}] " if turn.session_date else ""
    said = f"{day}{turn.speaker}: {turn.text}"
    if replying_to is None:
        return said
    return f"{said} (replying to {replying_to.speaker}: {shorten(replying_to.text, CONTEXT_CHARS)})"


def episode_data(document_id: uuid.UUID, turn: Turn) -> dict[str, Any]:
    return {
        "conversation": str(document_id),
        "position": turn.position,
        "session": turn.session,
        "session_date": turn.session_date.isoformat() if turn.session_date else None,
        "speaker": turn.speaker,
        "turn_id": turn.turn_id,
    }


def propose_episodes(
    session: Session,
    *,
    version_id: uuid.UUID,
    kicker: Kicker | None,
    embedder: Embedder,
    proposed_by: str = f"extractor:{EXTRACTOR}",
) -> list[MemoryVersion]:
    """Propose an episode for each new turn of a conversation's version; they enter review."""
    elements = session.exec(
        select(Element)
        .where(Element.version_id == version_id, Element.type == TURN)
        .order_by(col(Element.ord))
    ).all()
    if not elements:
        return []  # not a conversation: most versions, found with one query
    version = session.get(DocumentVersion, version_id)
    assert version is not None
    document = session.get(Document, version.document_id)
    assert document is not None
    known = hashes_seen_before(session, version, element_type=TURN)
    proposed = []
    previous: Turn | None = None
    for element in elements:
        turn = Turn.from_element(element)
        replying_to = previous if previous is not None and previous.session == turn.session else None
        previous = turn
        if element.content_hash in known or not turn.text.strip():
            continue
        _, memory = propose(
            session,
            tenant_id=version.tenant_id,
            proposal=MemoryProposal(
                text=episode_text(turn, replying_to),
                kind=MemoryKind.episode,
                scope=MemoryScope.collection,
                scope_ref=document.collection,
                data=episode_data(document.id, turn),
                valid_from=turn.session_date,
                evidence=[
                    EvidenceIn(
                        document_id=document.id,
                        version_number=version.number,
                        element_id=turn.element_id,
                        quote=turn.text,
                    )
                ],
            ),
            proposed_by=proposed_by,
            kicker=kicker,
            extractor=EXTRACTOR,
            extractor_version=EXTRACTOR_VERSION,
        )
        proposed.append(memory)
    # One batch for the whole conversation: the review's check embeds only what is missing.
    for memory, vector in zip(proposed, embedder.embed([m.text for m in proposed]), strict=True):
        memory.embedding = vector
        session.add(memory)
    session.flush()
    return proposed


# What recall needs: where each recalled episode sits in its conversation, and who spoke.


@dataclass(frozen=True)
class Episode:
    conversation: str
    session: int | None
    position: int
    speaker: str


def episodes_among(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Episode]:
    """The conversation episodes among these memory versions (the others are left out)."""
    if not ids:
        return {}
    rows = session.execute(
        text(
            "SELECT id, data FROM memory_version "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND extractor = :extractor AND data ? 'conversation'"
        ),
        {"ids": list(ids), "extractor": EXTRACTOR},
    ).all()
    found = {}
    for version_id, data in rows:
        if isinstance(data.get("position"), int):
            found[version_id] = Episode(
                conversation=str(data["conversation"]),
                session=data.get("session"),
                position=data["position"],
                speaker=str(data.get("speaker") or ""),
            )
    return found


def lift_neighbours(
    scores: dict[uuid.UUID, float], episodes: dict[uuid.UUID, Episode], *, weight: float
) -> dict[uuid.UUID, float]:
    """Add to each episode `weight` times the best score of the turns beside it in its session.

    The turn a question is about is often next to the one that matches it best: the question
    before an answer, the answer after a photo.
    """
    if weight <= 0:
        return scores
    at = {(e.conversation, e.session, e.position): scores[i] for i, e in episodes.items()}
    lifted = dict(scores)
    for version_id, e in episodes.items():
        beside = [at.get((e.conversation, e.session, e.position + step), 0.0) for step in (-1, 1)]
        lifted[version_id] = scores[version_id] + weight * max(beside)
    return lifted


def favour_named_speaker(
    scores: dict[uuid.UUID, float], episodes: dict[uuid.UUID, Episode], *, query: str, boost: float
) -> dict[uuid.UUID, float]:
    """When the query names exactly one of the speakers, that speaker's turns gain `boost` (a share)."""
    if boost <= 0:
        return scores
    speakers = {e.speaker for e in episodes.values() if e.speaker}
    named = {s for s in speakers if re.search(rf"\b{re.escape(s)}\b", query, re.IGNORECASE)}
    if len(named) != 1:
        return scores
    return {
        version_id: score * (1 + boost)
        if version_id in episodes and episodes[version_id].speaker in named
        else score
        for version_id, score in scores.items()
    }
