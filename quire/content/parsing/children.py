"""A parsing child forked from the server: the server's handle on it, and the child's own loop.

The server writes each job to the child's request pipe and reads the reply from its reply pipe
against the job's deadline (`frames.py`); past it, the child's process group is killed. A child
runs jobs one after another until one fails, it has run DOCUMENTS_PER_CHILD, or it has grown by
CHILD_GROWTH_LIMIT: forking a fresh child per document cost about 40 ms each (page tables of a
400 MB process, copy-on-write faults), as much as parsing a typical document.

On the pipes, a request is a pickled (job, args, memory limit in bytes), and a reply a pickled
(reply, keep), `reply` as in `protocol.py` and `keep` whether the child takes another job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

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
    def start(cls, connection: Connection) -> Child | None:
        """Fork a child (closing `connection`, the server's to the caller, in it); None if fork fails."""
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
            child_loop(request_read, reply_write)
        os.close(request_read)
        os.close(reply_write)
        return cls(pid, request_write, reply_read)

    def run(
        self, job: Callable[..., Any], args: tuple[Any, ...], timeout: float, memory_limit: int
    ) -> tuple[protocol.Reply, bool]:
        """The job's reply, and whether this child may take the next one."""
        deadline = time.monotonic() + timeout
        try:
            write_frame(self.requests, pickle.dumps((job, args, memory_limit), pickle.HIGHEST_PROTOCOL))
            payload = read_frame(self.replies, deadline)
        except OSError:
            payload = b""  # the child died before it read the request
        if payload is None:
            sandbox.kill_group(self.pid)
            message = f"parsing took longer than the {timeout:g} s time limit"
            return protocol.error(ParseTimeout.code, message), False
        if payload:
            with contextlib.suppress(Exception):
                reply, keep = pickle.loads(payload)
                return reply, keep
        return self._death(memory_limit), False

    def _death(self, memory_limit: int) -> protocol.Reply:
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

    def retire(self) -> None:
        """Close its pipes: the child reads the end of its requests and exits (reaped later)."""
        for end in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                os.close(end)
        if self.pid:
            sandbox.kill_group(self.pid)  # in case it is stuck; a no-op when it exits


def reap() -> None:
    """Collect children that have exited, without waiting for the ones still tearing down."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


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
                job, args, memory_limit = pickle.loads(incoming.read(HEADER.unpack(header)[0]))
            except BaseException:
                os._exit(1)
            reply = run_job(job, args, memory_limit)
            del job, args
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


def run_job(job: Callable[..., Any], args: tuple[Any, ...], memory_limit: int) -> protocol.Reply:
    """`job(*args)` under the memory limit, its outcome as a reply; never raises."""
    NETWORK_ATTEMPTS.clear()  # each job reports its own
    try:
        sandbox.limit_address_space(memory_limit)
        return protocol.ok(job(*args))
    except ParseFailure as exc:
        return protocol.error(exc.code, str(exc))
    except MemoryError:
        return protocol.error(ParseMemoryExceeded.code, sandbox.memory_message(memory_limit))
    except NetworkAccessForbidden as exc:
        return protocol.error(ParserUnavailable.code, str(exc))
    except BaseException as exc:
        logger.exception("the parsing child failed")
        return protocol.error(ParserCrashed.code, f"{type(exc).__name__}: {exc}")
