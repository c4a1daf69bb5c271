"""What a step records: typed results as their JSON form, read back as their type; signals with
their sender."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel

from quire.runtime.results import Received, decode_result, encode_result


class Pair(BaseModel):
    number: int
    when: datetime


def make_pair() -> Pair:
    return Pair(number=7, when=datetime(2030, 1, 1, tzinfo=UTC))


def make_ids() -> list[uuid.UUID]:
    return [uuid.UUID(int=1)]


def test_a_typed_result_is_recorded_as_json_and_read_back_as_its_type() -> None:
    stored = json.loads(encode_result(make_pair, make_pair()))
    assert stored == {"number": 7, "when": "2030-01-01T00:00:00Z"}
    assert decode_result(make_pair, stored) == make_pair()
    ids = json.loads(encode_result(make_ids, make_ids()))
    assert ids == ["00000000-0000-0000-0000-000000000001"]
    assert decode_result(make_ids, ids) == make_ids()


def test_an_untyped_result_is_recorded_and_read_back_as_it_is() -> None:
    stored = json.loads(encode_result(lambda: None, {"n": 1}))
    assert stored == {"n": 1}
    assert decode_result(lambda: None, stored) == {"n": 1}


def test_a_received_signal_keeps_its_sender_through_the_record() -> None:
    sender = uuid.uuid4()
    received = Received(payload={"ok": True}, sender_id=sender, sender_role="reviewer")
    record = json.loads(json.dumps(received.record()))
    assert record == {
        "payload": {"ok": True},
        "timed_out": False,
        "sender": {"id": str(sender), "role": "reviewer"},
    }
    assert Received.from_record(record) == received
    assert Received.from_record(Received(payload=1).record()) == Received(payload=1)
    assert Received.from_record(Received.timed_out_record()) is None
