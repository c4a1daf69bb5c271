"""The messages between Parser and the parsing server: a reply becomes a result or a typed failure."""

from __future__ import annotations

import pickle

import pytest

from quire.content.parsing import FAILURES, ParseFailure, ParseTimeout, protocol


def test_an_ok_reply_is_the_jobs_result() -> None:
    assert protocol.result_of(protocol.ok({"pages": 3})) == {"pages": 3}
    assert protocol.result_of(protocol.ok(None)) is None


@pytest.mark.parametrize("failure", sorted(FAILURES.values(), key=lambda cls: cls.code))
def test_every_failure_crosses_the_pipe_as_its_own_type(failure: type[ParseFailure]) -> None:
    reply = pickle.loads(pickle.dumps(protocol.error(failure.code, "what happened")))

    with pytest.raises(failure, match="what happened") as caught:
        protocol.result_of(reply)

    assert type(caught.value) is failure


def test_an_unknown_code_is_still_a_parse_failure() -> None:
    with pytest.raises(ParseFailure, match="from a newer server") as caught:
        protocol.result_of(protocol.error("no_such_code", "from a newer server"))

    assert type(caught.value) is ParseFailure


def test_failure_codes_are_distinct() -> None:
    assert FAILURES[ParseTimeout.code] is ParseTimeout
    assert len(FAILURES) == len({cls.code for cls in FAILURES.values()})
