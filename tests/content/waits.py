"""Waiting for a Parser's jobs to be under way, rather than sleeping and hoping they are."""

from __future__ import annotations

import time

from quire.content.parsing import Parser


def server_children(pid: int) -> list[int]:
    """The processes the parsing server `pid` has forked (its parsing children)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except FileNotFoundError:
        return []


def wait_for_jobs(parser: Parser, *, sent: int, running: int, cap: float = 30.0) -> None:
    """Until `sent` jobs have gone to the parsing server and await their replies, and the server
    runs `running` parsing children; at most `cap` seconds."""
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        server = parser._server
        if (
            server is not None
            and len(server.waiting) >= sent
            and len(server_children(server.process.pid)) >= running
        ):
            return
        time.sleep(0.01)
    server = parser._server
    raise AssertionError(
        f"jobs not under way after {cap} s: "
        f"{len(server.waiting) if server else 0} sent (of {sent}), "
        f"{len(server_children(server.process.pid)) if server else 0} children (of {running})"
    )
