"""Several parsing children at once: one slow file never stops the others (issue #19, finding 1)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from quire.content.parsing import Parser
from tests.content.waits import wait_for_jobs


@pytest.fixture(scope="module")
def two_lanes() -> Iterator[Parser]:
    with Parser(timeout=60, memory_limit_mb=1024, children=2) as parser:
        parser.warm_up()
        yield parser


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def sleep_and_time(seconds: float) -> tuple[int, float, float]:
    """The child's pid and when the sleep began and ended (CLOCK_MONOTONIC is system-wide)."""
    began = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), began, time.monotonic()


def in_thread(call: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call(*args, **kwargs))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_two_documents_parse_at_once_in_two_children(two_lanes: Parser) -> None:
    first, first_outcome = in_thread(two_lanes.run_in_child, sleep_and_time, 2.0)
    second, second_outcome = in_thread(two_lanes.run_in_child, sleep_and_time, 2.0)
    first.join(30)
    second.join(30)

    assert isinstance(first_outcome[0], tuple) and isinstance(second_outcome[0], tuple)
    first_pid, first_began, first_ended = first_outcome[0]
    second_pid, second_began, second_ended = second_outcome[0]
    # Each began before the other ended: they overlapped, however long the children took to start.
    assert first_began < second_ended and second_began < first_ended, "the two jobs ran one after the other"
    assert first_pid != second_pid


def test_a_small_file_is_not_queued_behind_large_ones(two_lanes: Parser) -> None:
    # Two large jobs: they may take one lane only, so the small file gets the other at once.
    large = [in_thread(two_lanes.run_in_child, sleep_and_time, 4.0, large=True) for _ in range(2)]
    wait_for_jobs(two_lanes, sent=2, running=1)  # one large job runs, the other waits for its lane
    document = two_lanes.parse(b"A memo of one line.", filename="memo.txt")
    small_done = time.monotonic()
    for thread, _ in large:
        thread.join(30)

    assert [e.text for e in document.elements] == ["A memo of one line."]
    assert all(isinstance(outcome[0], tuple) for _, outcome in large)
    first_large_done = min(outcome[0][2] for _, outcome in large)
    # Done before either large file: it did not wait for a lane behind them, however slow the machine.
    assert small_done < first_large_done, "the memo waited for a lane behind a large file"


def test_a_child_that_times_out_does_not_disturb_its_neighbour(two_lanes: Parser) -> None:
    slow, slow_outcome = in_thread(two_lanes.run_in_child, time.sleep, 30, timeout=1.0)
    steady, steady_outcome = in_thread(two_lanes.run_in_child, sleep_then_pid, 2.0)
    slow.join(30)
    steady.join(30)

    assert type(slow_outcome[0]).__name__ == "ParseTimeout"
    assert isinstance(steady_outcome[0], int)


def test_a_child_is_admitted_only_when_the_machine_has_the_memory() -> None:
    # No machine has this much free: the second job waits for the first, and still runs.
    with Parser(timeout=60, children=2, admit_free_mb=10**9) as parser:
        parser.warm_up()
        started = time.monotonic()
        jobs = [in_thread(parser.run_in_child, sleep_then_pid, 1.5) for _ in range(2)]
        for thread, _ in jobs:
            thread.join(30)

        assert time.monotonic() - started >= 3.0, "the second job started without the memory for it"
        assert all(isinstance(outcome[0], int) for _, outcome in jobs)


def test_the_server_dies_and_every_waiting_caller_hears_of_it() -> None:
    import signal

    from quire.content.parsing import ParserCrashed

    with Parser(timeout=60, children=2) as parser:
        parser.warm_up()
        jobs = [in_thread(parser.run_in_child, sleep_then_pid, 20.0) for _ in range(3)]
        wait_for_jobs(parser, sent=3, running=2)  # two jobs in children, one waiting for a child
        pid = parser.server_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for thread, _ in jobs:
            thread.join(10)

        assert [type(outcome[0]) for _, outcome in jobs] == [ParserCrashed] * 3
        assert parser.run_in_child(os.getpid) > 0, "the next job starts a new server"


def test_a_child_that_parsed_a_large_file_exits_and_gives_its_memory_back(two_lanes: Parser) -> None:
    small = two_lanes.run_in_child(os.getpid)
    assert two_lanes.run_in_child(os.getpid) == small, "a child that parsed a small file stays"

    large = two_lanes.run_in_child(os.getpid, large=True)
    after = two_lanes.run_in_child(os.getpid, large=True)

    assert after != large, "the child that parsed a large file was kept"
