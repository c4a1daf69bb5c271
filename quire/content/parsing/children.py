"""A parsing child forked from the server: the server's handle on it, and the child's own loop.

The server writes each job to the child's request pipe and reads the reply from its reply pipe
against the job's deadline (`frames.py`); past it, the child's process group is killed. The
server runs several children at once (`server.py`); each runs one job at a time. A child
runs jobs one after another until one fails, it has run DOCUMENTS_PER_CHILD, or it has grown by
CHILD_GROWTH_LIMIT: forking a fresh child per document cost about 40 ms each (page tables of a
400 MB process, copy-on-write faults), as much as parsing a typical document.

On the pipes, a request is a pickled (job, memory limit in bytes), `job` being the pickled
(function, args) the caller sent, and a reply a pickled (reply, keep), `reply` as in
`protocol.py` and `keep` whether the child takes another job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
from multiprocessing.connection import Connection
from typing import NoReturn

from quire.content.parsing import protocol, sandbox
from quire.content.parsing.errors import (
    ParseFailure,
    ParseMemoryExceeded,
    ParserCrashed,
    ParserUnavailable,
    ParseTimeout,
)
from quire.content.parsing.frames import HEADER, read_frame, write_frame
from quire.content.parsing.offline import NETWORK_ATTEMPTS, NetworkAccessForbidden

logger = logging.getLogger(__name__)

DOCUMENTS_PER_CHILD = 200
CHILD_GROWTH_LIMIT = 512 * 1024 * 1024


class Child:
    """The server's end of a forked parsing child: a request pipe, a reply pipe, its pid."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid, self.requests, self.replies = pid, requests, replies

    @classmethod
    def start(cls, connection: Connection, inherited: list[int]) -> Child | None:
        """Fork a child; None if fork fails.

        In the child, `connection` (the server's to the caller) and `inherited` (the server's
        ends of its other children's pipes) are closed: a child holding a sibling's request pipe
        would keep that sibling from reading the end of its requests when it retires.
        """
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for end in (request_read, request_write, reply_read, reply_write):
                os.close(end)
            return None
        if pid == 0:
            os.close(request_write)
            os.close(reply_read)
            connection.close()
            for end in inherited:
                with contextlib.suppress(OSError):
                    os.close(end)
            child_loop(request_read, reply_write)
        os.close(request_read)
        os.close(reply_write)
        return cls(pid, request_write, reply_read)

    def send(self, job: bytes, memory_limit: int) -> bool:
        """Hand the child a job (`pickle.dumps((function, args))`); False if it died before."""
        try:
            write_frame(self.requests, pickle.dumps((job, memory_limit), pickle.HIGHEST_PROTOCOL))
        except OSError:
            return False
        return True

    def receive(self, deadline: float, timeout: float, memory_limit: int) -> tuple[protocol.Reply, bool]:
        """The job's reply, read by `deadline`, and whether this child may take the next one."""
        try:
            payload = read_frame(self.replies, deadline)
        except OSError:
            payload = b""
        if payload is None:
            return self.timed_out(timeout), False
        if payload:
            with contextlib.suppress(Exception):
                reply, keep = pickle.loads(payload)
                return reply, keep
        return self.died(memory_limit), False

    def timed_out(self, timeout: float) -> protocol.Reply:
        """Kill the child at its job's deadline; the reply that says so."""
        sandbox.kill_group(self.pid)
        return protocol.error(ParseTimeout.code, f"parsing took longer than the {timeout:g} s time limit")

    def died(self, memory_limit: int) -> protocol.Reply:
        """Why the child ended without a reply."""
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # already reaped: it died between two documents
            return protocol.error(ParserCrashed.code, "the parsing child exited unexpectedly")
        finally:
            self.pid = 0
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code == sandbox.EXIT_MEMORY:
            return protocol.error(ParseMemoryExceeded.code, sandbox.memory_message(memory_limit))
        if exit_code < 0:
            name = signal.Signals(-exit_code).name
            hint = " (perhaps by the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
            return protocol.error(ParserCrashed.code, f"the parser was killed by {name}{hint}")
        return protocol.error(ParserCrashed.code, f"the parser exited with status {exit_code}")

    def retire(self) -> int:
        """Close its pipes: the child reads the end of its requests and exits. Its pid, to reap
        later (0 when it was reaped already)."""
        for end in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                os.close(end)
        if self.pid:
            sandbox.kill_group(self.pid)  # in case it is stuck; a no-op when it exits
        return self.pid


def reap(pids: list[int]) -> list[int]:
    """Collect the retired children in `pids` that have exited; the pids still tearing down.

    Only these pids: a `waitpid(-1)` would also collect a busy child that just died, before
    the server has read why.
    """
    remaining = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                remaining.append(pid)
        except ChildProcessError:
            pass
    return remaining


def child_loop(requests: int, replies: int) -> NoReturn:
    """Body of a forked child: run jobs until the server closes the pipe or the child retires."""
    sandbox.isolate()
    started_size = sandbox.address_space()
    done = 0
    with open(requests, "rb") as incoming:
        while True:
            header = incoming.read(HEADER.size)
            if len(header) < HEADER.size:
                os._exit(0)  # the server retired this child
            try:
                job, memory_limit = pickle.loads(incoming.read(HEADER.unpack(header)[0]))
            except BaseException:
                os._exit(1)
            reply = run_job(job, memory_limit)
            del job
            done += 1
            keep = (
                reply[0] == protocol.OK
                and done < DOCUMENTS_PER_CHILD
                and sandbox.address_space() - started_size < CHILD_GROWTH_LIMIT
            )
            try:
                write_frame(replies, pickle.dumps((reply, keep), pickle.HIGHEST_PROTOCOL))
            except MemoryError:
                os._exit(sandbox.EXIT_MEMORY)
            except BaseException:
                os._exit(1)
            if not keep:
                os._exit(0)


def run_job(job: bytes, memory_limit: int) -> protocol.Reply:
    """`function(*args)`, unpickled from `job`, under the memory limit; its outcome as a reply.

    Never raises.
    """
    NETWORK_ATTEMPTS.clear()  # each job reports its own
    try:
        function, args = pickle.loads(job)
    except Exception as exc:  # a job this process cannot import
        return protocol.error(ParserUnavailable.code, f"bad request: {exc!r}")
    try:
        sandbox.limit_address_space(memory_limit)
        return protocol.ok(function(*args))
    except ParseFailure as exc:
        return protocol.error(exc.code, str(exc))
    except MemoryError:
        return protocol.error(ParseMemoryExceeded.code, sandbox.memory_message(memory_limit))
    except NetworkAccessForbidden as exc:
        return protocol.error(ParserUnavailable.code, str(exc))
    except BaseException as exc:
        logger.exception("the parsing child failed")
        return protocol.error(ParserCrashed.code, f"{type(exc).__name__}: {exc}")
