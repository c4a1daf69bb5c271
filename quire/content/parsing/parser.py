"""`Parser`, the caller's side of parsing: it starts the parsing server and sends it documents.

`Parser` starts a parsing server, a separate Python process (`server.py`) that imports
unstructured, loads spaCy's model and applies Quire's patches once. For each document the server
forks a child that caps its own address space with `RLIMIT_AS`, parses, and writes the result
back; the server kills a child that runs past the time limit. A hostile file (a zip bomb, a huge
PDF, malformed XML) can kill only that child: the caller gets a typed `ParseFailure` and the next
document parses in a fresh child. The calling process, which may be multi-threaded, never forks,
and never imports unstructured for a parse.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar, cast

from quire.content.parsing import protocol
from quire.content.parsing.errors import ParserCrashed, ParserUnavailable
from quire.content.parsing.quiet import UNSTRUCTURED_ENVIRONMENT
from quire.content.parsing.results import ParsedDocument

logger = logging.getLogger(__name__)

T = TypeVar("T")

SERVER_COMMAND = "from quire.content.parsing.server import serve; serve"
# A new parsing child starts only while the machine has this much memory available (MiB): enough
# for a child to parse a large file (a 600-page PDF peaked near 400 MB) without pushing the
# machine into swap or the out-of-memory killer. One child may always run.
ADMIT_FREE_MB = 1024


class Parser:
    """One per worker process. Parses in child processes with a time limit and a memory limit.

    The first use starts the parsing server (`python -c "...server.serve(...)"`), which
    imports unstructured and loads spaCy's model once, then runs each document in a child forked
    from it, up to `children` at once (admitted while the machine has `admit_free_mb` available).
    The server enforces the time limit (it kills the child) and each child caps its own address
    space at the server's size plus `memory_limit_mb`. Any number of threads may parse at once;
    each waits for its own reply. If the server itself dies, every parse waiting on it raises
    ParserCrashed and the next one starts it again.
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        memory_limit_mb: int = 2048,
        children: int = 1,
        admit_free_mb: int = ADMIT_FREE_MB,
    ) -> None:
        if timeout <= 0 or memory_limit_mb <= 0 or children <= 0:
            raise ValueError("timeout, memory_limit_mb and children must be positive")
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.children = children
        self.admit_free_mb = admit_free_mb
        self.startup_timeout = 600.0
        self._lock = threading.Lock()  # starting and stopping the server, and sending to it
        self._server: _Server | None = None
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def server_pid(self) -> int | None:
        """The parsing server's process id, while it runs."""
        server = self._server
        return server.process.pid if server is not None else None

    def warm_up(self) -> None:
        """Start the parsing server and pay unstructured's imports now, not on a document."""
        with self._lock:
            self._ensure_server()

    def parse(
        self,
        data: bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
        large: bool = False,
    ) -> ParsedDocument:
        """The elements of `data`; raises a `ParseFailure` subclass when it cannot be parsed.

        `timeout` and `memory_limit_mb` override the parser's limits for this document; `large`
        marks work that must not take every child (see server.py).
        """
        return self.run_in_child(
            _parse_document,
            data,
            filename,
            content_type,
            timeout=timeout,
            memory_limit_mb=memory_limit_mb,
            large=large,
        )

    def run_in_child(
        self,
        job: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
        large: bool = False,
    ) -> T:
        """`job(*args)` in a child under this parser's limits; `job` must be importable."""
        limit = self.timeout if timeout is None else timeout
        memory = self.memory_limit_mb if memory_limit_mb is None else memory_limit_mb
        request = protocol.request(
            next(self._ids), job, args, timeout=limit, memory_limit=memory * 1024 * 1024, large=large
        )
        with self._lock:
            server = self._ensure_server()
            try:
                waiting = server.send(request)
            except OSError:  # the server died since the last document: start another
                logger.warning("the parsing server died between documents; starting it again")
                self._stop_server()
                server = self._ensure_server()
                waiting = server.send(request)
        return cast(T, protocol.result_of(waiting.reply()))

    def close(self) -> None:
        """Stop the parsing server and any parse in progress (which raises ParserCrashed)."""
        self._closed = True
        server = self._server
        if server is not None:
            server.process.kill()  # without waiting for the lock a sender may hold
        with self._lock:
            self._stop_server()

    def _ensure_server(self) -> _Server:
        if self._closed:
            raise RuntimeError("the parser is closed")
        if self._server is not None:
            if self._server.alive():
                return self._server
            logger.warning("the parsing server exited (%s); starting it again", self._server.process.poll())
            self._stop_server()
        started = time.monotonic()
        ours, theirs = socket.socketpair()
        environment = {
            **os.environ,
            **UNSTRUCTURED_ENVIRONMENT,
            # The server must import what the caller can (Quire, and jobs defined in tests).
            "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        }
        arguments = f"{theirs.fileno()}, {self.children}, {self.admit_free_mb}"
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-c", f"{SERVER_COMMAND}({arguments})"],
                pass_fds=[theirs.fileno()],
                env=environment,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the worker is the worker's to handle
            )
        connection = Connection(ours.detach())
        try:
            if not connection.poll(self.startup_timeout):
                raise ParserUnavailable(f"the parsing server did not start within {self.startup_timeout:g} s")
            status, detail = connection.recv()
        except (OSError, EOFError) as exc:
            connection.close()
            raise ParserUnavailable(
                f"the parsing server exited while starting (status {process.wait()}); "
                "see its error output above"
            ) from exc
        except ParserUnavailable:
            _Server(process, connection).stop()
            raise
        if status != protocol.READY:
            _Server(process, connection).stop()
            raise ParserUnavailable(str(detail))
        logger.info(
            "parsing server %s ready in %.1f s (imports %.1f s), %d parsing children at most",
            process.pid,
            time.monotonic() - started,
            detail["prepare_seconds"],
            self.children,
        )
        self._server = _Server(process, connection)
        self._server.start_reading()
        return self._server

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Waiting:
    """A request sent to the server, until its reply arrives (or the server dies)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._reply: protocol.Reply | None = None

    def settle(self, reply: protocol.Reply) -> None:
        self._reply = reply
        self._done.set()

    def reply(self) -> protocol.Reply:
        # No time limit here: the server enforces each job's, and a job may wait its turn for a
        # child for as long as the jobs before it take. A dead server settles every request.
        self._done.wait()
        assert self._reply is not None
        return self._reply


class _Server:
    """A running parsing server: its process, its connection, and the requests awaiting replies.

    One thread reads every reply and hands it to the request it answers; senders hold the
    Parser's lock. When the connection ends (the server died or was stopped), every request
    still waiting gets ParserCrashed.
    """

    def __init__(self, process: subprocess.Popen[bytes], connection: Connection) -> None:
        self.process, self.connection = process, connection
        self.waiting: dict[int, _Waiting] = {}
        self._waiting_lock = threading.Lock()
        self._ended = False

    def start_reading(self) -> None:
        threading.Thread(target=self._read, name=f"parsing-server-{self.process.pid}", daemon=True).start()

    def alive(self) -> bool:
        return not self._ended and self.process.poll() is None

    def send(self, request: protocol.Request) -> _Waiting:
        waiting = _Waiting()
        with self._waiting_lock:
            if self._ended:
                raise OSError("the parsing server has ended")
            self.waiting[request.id] = waiting
        try:
            self.connection.send(tuple(request))
        except OSError:
            with self._waiting_lock:
                self.waiting.pop(request.id, None)
            raise
        return waiting

    def _read(self) -> None:
        try:
            while True:
                request_id, reply = self.connection.recv()
                with self._waiting_lock:
                    waiting = self.waiting.pop(request_id, None)
                if waiting is not None:
                    waiting.settle(reply)
        except (OSError, EOFError, TypeError, ValueError) as exc:
            status = self.process.poll()
            reason = f"exit status {status}" if status is not None else repr(exc)
            with self._waiting_lock:
                self._ended = True
                orphans, self.waiting = list(self.waiting.values()), {}
            for waiting in orphans:
                waiting.settle(protocol.error(ParserCrashed.code, f"the parsing server died ({reason})"))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()  # the server exits when its connection closes
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()  # a child it forked dies with it (PR_SET_PDEATHSIG)
            self.process.wait()


def _parse_document(data: bytes, filename: str | None, declared: str | None) -> ParsedDocument:
    """The job `Parser.parse` sends: it runs in a parsing child, so unstructured is imported there."""
    from quire.content.parsing.document import parse_document
    from quire.content.parsing.preparation import readiness

    readiness()
    return parse_document(data, filename=filename, declared=declared)
