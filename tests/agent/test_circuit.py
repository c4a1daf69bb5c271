"""The circuit breaker per model target (agent/circuit.py): opened by failures in a row, one trial
call once it cools down, and one state for every worker because it lives in the database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from quire.agent.circuit import COOL_DOWN_SECONDS, THRESHOLD, CircuitBreaker
from quire.core.db import Database
from tests.factories import open_database


def cooled_down(database: Database, target: str) -> None:
    """Move the target's retry time into the past, as the cool-down passing would."""
    with database.system_session() as session:
        session.execute(
            text("UPDATE agent_circuit SET retry_at = now() - interval '1 second' WHERE target = :t"),
            {"t": target},
        )
        session.commit()


def open_circuit(breaker: CircuitBreaker, target: str) -> None:
    for _ in range(breaker.threshold):
        breaker.failed(target, "503 overloaded")


# One transaction, rolled back: what one breaker decides.


def test_the_circuit_opens_after_threshold_failures_in_a_row(database: Database) -> None:
    breaker = CircuitBreaker(database)
    assert (breaker.threshold, breaker.cool_down) == (THRESHOLD, COOL_DOWN_SECONDS)
    assert breaker.state("primary") == {"state": "closed", "failures": 0}
    assert breaker.allows("primary")
    assert [breaker.failed("primary", f"failure {n}") for n in range(1, THRESHOLD + 1)] == [False] * (
        THRESHOLD - 1
    ) + [True]
    state = breaker.state("primary")
    assert state["state"] == "open" and state["failures"] == THRESHOLD
    assert state["last_error"] == f"failure {THRESHOLD}"
    assert not breaker.allows("primary")
    assert breaker.allows("backup")  # a circuit per target


def test_a_success_resets_the_count_of_failures(database: Database) -> None:
    breaker = CircuitBreaker(database)
    for _ in range(THRESHOLD - 1):
        breaker.failed("primary", "timeout")
    breaker.succeeded("primary")
    assert breaker.state("primary")["failures"] == 0
    assert breaker.failed("primary", "timeout") is False
    assert breaker.allows("primary")


def test_a_long_error_is_kept_shortened(database: Database) -> None:
    breaker = CircuitBreaker(database, threshold=1)
    breaker.failed("primary", "x" * 2000)
    assert breaker.state("primary")["last_error"] == "x" * 500


def test_after_the_cool_down_one_trial_call_is_let_through(database: Database) -> None:
    breaker = CircuitBreaker(database)
    open_circuit(breaker, "primary")
    assert not breaker.allows("primary")
    cooled_down(database, "primary")
    assert breaker.allows("primary")  # the trial
    assert not breaker.allows("primary")  # nobody else until it answers
    breaker.succeeded("primary")
    assert breaker.state("primary") == {
        "state": "closed",
        "failures": 0,
        "retry_at": None,
        "last_error": "503 overloaded",
    }
    assert breaker.allows("primary") and breaker.allows("primary")


def test_a_failed_trial_opens_the_circuit_again(database: Database) -> None:
    breaker = CircuitBreaker(database)
    open_circuit(breaker, "primary")
    cooled_down(database, "primary")
    assert breaker.allows("primary")
    assert breaker.failed("primary", "still down") is True
    assert not breaker.allows("primary")
    assert breaker.state("primary")["failures"] == THRESHOLD + 1


# Committed rows in a database of their own: what several workers see.


@pytest.fixture
def two_workers(runtime_database_url: str) -> Iterator[tuple[CircuitBreaker, CircuitBreaker, str]]:
    """Two breakers as two worker processes hold them (each its own pool), and a target of this
    test alone, removed afterwards (the table belongs to no tenant)."""
    target = f"target-{uuid.uuid4().hex[:8]}"
    first, second = open_database(runtime_database_url), open_database(runtime_database_url)
    try:
        yield CircuitBreaker(first), CircuitBreaker(second), target
    finally:
        with first.system_session() as session:
            session.execute(text("DELETE FROM agent_circuit WHERE target = :t"), {"t": target})
            session.commit()
        first.dispose()
        second.dispose()


def test_breakers_on_the_same_database_agree(two_workers: tuple[CircuitBreaker, CircuitBreaker, str]) -> None:
    one, other, target = two_workers
    one.failed(target, "500")
    other.failed(target, "502")  # failures in a row, whoever saw them
    assert other.allows(target)
    assert one.failed(target, "503") is True
    assert not other.allows(target)
    assert other.state(target)["state"] == "open" and other.state(target)["last_error"] == "503"

    cooled_down(one.database, target)
    assert other.allows(target)  # the trial is this worker's
    assert not one.allows(target)
    other.succeeded(target)
    assert one.allows(target)
    assert one.state(target)["state"] == "closed"


def test_only_one_worker_gets_the_trial_call(two_workers: tuple[CircuitBreaker, CircuitBreaker, str]) -> None:
    one, other, target = two_workers
    open_circuit(one, target)
    cooled_down(one.database, target)
    start = threading.Barrier(2)
    answers: dict[str, bool] = {}

    def ask(name: str, breaker: CircuitBreaker) -> None:
        start.wait()
        answers[name] = breaker.allows(target)

    threads = [threading.Thread(target=ask, args=(n, b)) for n, b in (("one", one), ("other", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(answers.values()) == [False, True]
