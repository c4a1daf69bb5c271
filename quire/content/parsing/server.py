"""The parsing server: a process `Parser` starts, that prepares once and runs jobs in children.

`Parser` runs `serve` in a fresh Python process (`python -c`), never a fork of the caller, which
may be multi-threaded. The server prepares itself (`preparation.py`), says whether it is ready,
then runs the caller's jobs (`protocol.py`), each in a child forked from it (`children.py`) under
a time and a memory limit (`sandbox.py`), several at once:

- at most `size` children run at a time, and a new one starts only while the machine has
  `admit_free_mb` of memory available (one always may when none runs), so a burst of documents
  cannot push the machine into swap or the out-of-memory killer;
- small jobs go first, and large ones (the pages of a long PDF) take at most `size - 1` children,
  so a memo is never queued behind a manual;
- a child that ran a large job exits after it, and gives its memory back to the machine.

The caller's process never imports this module, nor unstructured.
"""

from __future__ import annotations

import gc
import os
import select
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection

from quire.content.parsing import protocol
from quire.content.parsing.children import Child, reap
from quire.content.parsing.errors import ParserCrashed, ParserUnavailable
from quire.content.parsing.preparation import readiness


def serve(fd: int, size: int, admit_free_mb: int) -> None:
    """The parsing server: prepare once, then run the caller's jobs in up to `size` children.

    The caller's connection is `fd`; the server exits when it closes.
    """
    connection = Connection(fd)
    try:
        greeting: protocol.Reply = (protocol.READY, readiness())
    except ParserUnavailable as exc:
        greeting = (protocol.UNAVAILABLE, str(exc))
    try:
        connection.send(greeting)
    except OSError:  # the caller stopped (a worker shutting down) while this process prepared
        os._exit(0)
    if greeting[0] != protocol.READY:
        return
    # Every object made so far (unstructured, spaCy, pdfminer: hundreds of MB) is kept out of
    # the garbage collector's reach: a collection in a forked child would otherwise write to all
    # of them and copy every page.
    gc.freeze()
    Lanes(connection, max(1, size), admit_free_mb).run()


@dataclass
class Running:
    """A job a child is running."""

    child: Child
    request: protocol.Request
    deadline: float


class Lanes:
    """The server's children, the jobs they run and the jobs waiting for one."""

    def __init__(self, connection: Connection, size: int, admit_free_mb: int) -> None:
        self.connection, self.size, self.admit_free_mb = connection, size, admit_free_mb
        self.idle: list[Child] = []
        self.running: dict[int, Running] = {}  # by the child's reply pipe
        self.waiting: deque[protocol.Request] = deque()
        self.retired: list[int] = []

    def run(self) -> None:
        while True:
            self.start_waiting_jobs()
            deadline = min((r.deadline for r in self.running.values()), default=None)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self.connection.fileno(), *self.running], [], [], wait)
            for fd in readable:
                if fd == self.connection.fileno():
                    self.receive_request()
                else:
                    self.finish(self.running.pop(fd))
            now = time.monotonic()
            for fd, running in list(self.running.items()):
                if running.deadline <= now:
                    del self.running[fd]
                    self.send(running.request.id, running.child.timed_out(running.request.timeout))
                    self.retire(running.child)
            self.retired = reap(self.retired)

    def receive_request(self) -> None:
        try:
            request = protocol.Request(*self.connection.recv())
        except (EOFError, OSError):  # the caller is gone or closed the parser
            os._exit(0)  # nothing to clean up; an orderly shutdown of spaCy & co. takes a second
        self.waiting.append(request)

    def start_waiting_jobs(self) -> None:
        while len(self.running) < self.size and (request := self.next_request()) is not None:
            if self.running and available_mb() < self.admit_free_mb:
                self.waiting.appendleft(request)
                return  # a running child will finish and the loop comes back here
            child = self.idle.pop() if self.idle else self.fork()
            if child is None:
                self.send(request.id, protocol.error(ParserCrashed.code, "could not start a parsing child"))
            elif child.send(request.job, request.memory_limit):
                deadline = time.monotonic() + request.timeout
                self.running[child.replies] = Running(child, request, deadline)
            else:  # it died between two jobs
                self.send(request.id, child.died(request.memory_limit))
                self.retire(child)

    def next_request(self) -> protocol.Request | None:
        """The first small job waiting, else the first large one if a large job may start."""
        for request in self.waiting:
            if not request.large:
                self.waiting.remove(request)
                return request
        large_running = sum(1 for r in self.running.values() if r.request.large)
        if self.waiting and large_running < max(1, self.size - 1):
            return self.waiting.popleft()
        return None

    def fork(self) -> Child | None:
        inherited = [fd for child in self.idle for fd in (child.requests, child.replies)]
        inherited += [fd for r in self.running.values() for fd in (r.child.requests, r.child.replies)]
        return Child.start(self.connection, inherited)

    def finish(self, running: Running) -> None:
        request = running.request
        reply, keep = running.child.receive(running.deadline, request.timeout, request.memory_limit)
        # A child that parsed a large file has grown by what the file needed: let it go.
        keep = keep and not request.large
        self.send(request.id, reply)
        if keep:
            self.idle.append(running.child)
        else:
            self.retire(running.child)

    def send(self, request_id: int, reply: protocol.Reply) -> None:
        try:
            self.connection.send((request_id, reply))
        except OSError:
            os._exit(0)

    def retire(self, child: Child) -> None:
        if pid := child.retire():
            self.retired.append(pid)


def available_mb() -> int:
    """The memory the machine can give without swapping (MemAvailable), in MiB."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 1 << 30  # a kernel without the field: admit by count alone
