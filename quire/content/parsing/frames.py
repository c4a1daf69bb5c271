"""Length-prefixed frames on a pipe, read against a deadline: how the server talks to its child.

The server reads each reply with the job's deadline, so a child that hangs, even halfway through
its reply, costs no more than the job's time limit.
"""

from __future__ import annotations

import os
import select
import struct
import time

HEADER = struct.Struct("!Q")


def write_frame(fd: int, payload: bytes) -> None:
    """Write `payload` to `fd` whole, after its length."""
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(fd: int, deadline: float) -> bytes | None:
    """One length-prefixed frame from `fd`; b"" if the writer is gone, None at `deadline`."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    buffer = bytearray()
    wanted: int | None = None
    while wanted is None or len(buffer) < wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if not poller.poll(remaining * 1000):
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b""
        buffer += chunk
        if wanted is None and len(buffer) >= HEADER.size:
            wanted = HEADER.size + HEADER.unpack_from(buffer)[0]
    return bytes(buffer[HEADER.size :])
