"""Frames on a pipe: whole payloads, a writer that is gone, and a deadline that passes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from quire.content.parsing.frames import read_frame, write_frame


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for end in (read_end, write_end):
        with contextlib.suppress(OSError):  # a test may have closed it
            os.close(end)


def test_a_frame_larger_than_the_pipe_arrives_whole(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    payload = os.urandom(3 * 1024 * 1024)  # far more than a pipe buffers
    writer = threading.Thread(target=write_frame, args=(write_end, payload))
    writer.start()

    received = read_frame(read_end, time.monotonic() + 10)
    writer.join()

    assert received == payload


def test_frames_are_read_one_at_a_time(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    write_frame(write_end, b"first")

    assert read_frame(read_end, time.monotonic() + 5) == b"first"
    write_frame(write_end, b"")
    assert read_frame(read_end, time.monotonic() + 5) == b""


def test_a_writer_gone_mid_frame_reads_as_empty(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, (100).to_bytes(8, "big") + b"only part")
    os.close(write_end)

    assert read_frame(read_end, time.monotonic() + 5) == b""


def test_a_silent_writer_reads_as_none_at_the_deadline(pipe: tuple[int, int]) -> None:
    read_end, _ = pipe
    started = time.monotonic()

    assert read_frame(read_end, started + 0.2) is None
    assert time.monotonic() - started < 5
