"""Conversation transcripts: a JSON document of who said what, when, read as one element per turn.

A transcript is a JSON object with a list of sessions, each with its date and its turns:

    {"transcript": {"sessions": [
        {"date": "2023-05-08T13:56:00+00:00",
         "turns": [{"speaker": "Melanie", "text": "Did you go to the support group?", "id": "D1:1"},
                   {"speaker": "Caroline", "text": "Yes, I went yesterday."}]}]}}

A single session may leave out the list: `{"transcript": {"date": ..., "turns": [...]}}`. Dates are
ISO 8601 (a date without a time is midnight UTC) and may be left out; `id` is optional. Each turn
becomes an element of type `turn` with the speaker, session number, session date and turn id in
its metadata, in the section "Session N"; the memory layer makes each turn an episode.

Any other JSON goes to unstructured's JSON partitioner as before: the `transcript` key is what
marks a conversation, so no ordinary JSON document is read as one by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quire.content.parsing import ParsedElement, ParseFailure

TURN = "turn"  # the element type of a conversation's turn
MARKER = "transcript"


class InvalidTranscript(ParseFailure):
    """The JSON says it is a transcript but is not one Quire can read (status failed, code parse_failed)."""


@dataclass(frozen=True)
class _Session:
    number: int
    date: datetime | None
    turns: list[Any]


def read_transcript(data: bytes) -> list[ParsedElement] | None:
    """The turns of a transcript, or None when `data` is not a transcript."""
    if b'"' + MARKER.encode() + b'"' not in data[:4096]:
        return None  # cheap: most JSON documents are not transcripts
    try:
        document = json.loads(data)
    except ValueError:
        return None  # not JSON at all: the ordinary parser says why
    if not isinstance(document, dict) or MARKER not in document:
        return None
    body = document[MARKER]
    if not isinstance(body, dict):
        raise InvalidTranscript("`transcript` must be an object with `sessions` or `turns`")
    sessions = body.get("sessions", [body] if "turns" in body else None)
    if not isinstance(sessions, list) or not sessions:
        raise InvalidTranscript("`transcript` must have a non-empty list `sessions` (or `turns`)")
    elements: list[ParsedElement] = []
    for number, raw in enumerate(sessions, start=1):
        session = _session(number, raw)
        for position, turn in enumerate(session.turns, start=1):
            elements.append(_turn(session, position, turn))
    return elements


def _session(number: int, raw: object) -> _Session:
    if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
        raise InvalidTranscript(f"session {number} must be an object with a list `turns`")
    return _Session(number, _date(raw.get("date"), f"session {number}"), raw["turns"])


def _date(value: object, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidTranscript(f"{where}: date {value!r} is not ISO 8601 (2023-05-08T13:56)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _turn(session: _Session, position: int, raw: object) -> ParsedElement:
    where = f"session {session.number}, turn {position}"
    if not isinstance(raw, dict):
        raise InvalidTranscript(f"{where} must be an object with `speaker` and `text`")
    speaker, words = raw.get("speaker"), raw.get("text")
    if not isinstance(speaker, str) or not speaker.strip():
        raise InvalidTranscript(f"{where} has no `speaker`")
    if not isinstance(words, str):
        raise InvalidTranscript(f"{where} has no `text`")
    metadata: dict[str, Any] = {"speaker": speaker.strip(), "session": session.number}
    if session.date is not None:
        metadata["session_date"] = session.date.isoformat()
    if raw.get("id") is not None:
        metadata["turn_id"] = str(raw["id"])
    return ParsedElement(
        type=TURN, text=words.strip(), section_path=(f"Session {session.number}",), metadata=metadata
    )
