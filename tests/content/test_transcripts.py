"""Transcript JSON: read as turns when it says it is one, left to the JSON parser otherwise."""

from __future__ import annotations

import json

import pytest

from quire.content.transcripts import InvalidTranscript, read_transcript


def test_ordinary_json_is_not_a_transcript() -> None:
    assert read_transcript(json.dumps({"title": "Release notes", "items": [1, 2]}).encode()) is None
    assert read_transcript(b'{"transcript": ') is None  # broken JSON: the JSON parser says why
    assert read_transcript(json.dumps(["transcript"]).encode()) is None


def test_a_single_session_may_leave_out_the_list_and_its_date() -> None:
    turns = read_transcript(
        json.dumps({"transcript": {"turns": [{"speaker": " Ann ", "text": " Hi Bo. ", "id": 7}]}}).encode()
    )
    assert turns is not None and len(turns) == 1
    assert (turns[0].type, turns[0].text, turns[0].section_path) == ("turn", "Hi Bo.", ("Session 1",))
    assert turns[0].metadata == {"speaker": "Ann", "session": 1, "turn_id": "7"}


def test_dates_without_a_zone_are_utc() -> None:
    data = {"transcript": {"sessions": [{"date": "2023-05-08", "turns": [{"speaker": "A", "text": "x"}]}]}}
    turns = read_transcript(json.dumps(data).encode())
    assert turns is not None and turns[0].metadata["session_date"] == "2023-05-08T00:00:00+00:00"


@pytest.mark.parametrize(
    ("transcript", "message"),
    [
        ([], "`transcript` must be an object with `sessions` or `turns`"),
        ({"sessions": []}, "non-empty list `sessions`"),
        ({"sessions": [{"turns": "hello"}]}, "session 1 must be an object with a list `turns`"),
        ({"sessions": [{"date": "8 May", "turns": []}]}, "session 1: date '8 May' is not ISO 8601"),
        ({"turns": [{"speaker": "A"}]}, "session 1, turn 1 has no `text`"),
    ],
)
def test_a_malformed_transcript_says_what_is_wrong(transcript: object, message: str) -> None:
    with pytest.raises(InvalidTranscript, match=message.replace("(", r"\(")):
        read_transcript(json.dumps({"transcript": transcript}).encode())
