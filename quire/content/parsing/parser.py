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
# How long past a parse's time limit the caller waits before it gives the server up for dead.
SERVER_GRACE_SECONDS = 30.0


class Parser:
    """One per worker process. Parses in a child process with a time limit and a memory limit.

    The first use starts the parsing server (`python -c "...server.serve(...)"`), which
    imports unstructured and loads spaCy's model once, then forks one child per document. The
    server enforces the time limit (it kills the child) and each child caps its own address space
    at the server's size plus `memory_limit_mb`. If the server itself dies it is started again on
    the next parse.
    """

    def __init__(self, *, timeout: float = 120.0, memory_limit_mb: int = 2048) -> None:
        if timeout <= 0 or memory_limit_mb <= 0:
            raise ValueError("timeout and memory_limit_mb must be positive")
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.startup_timeout = 600.0
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._closed = False

    @property
    def server_pid(self) -> int | None:
        """The parsing server's process id, while it runs."""
        return self._server.pid if self._server is not None else None

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
    ) -> ParsedDocument:
        """The elements of `data`; raises a `ParseFailure` subclass when it cannot be parsed.

        `timeout` and `memory_limit_mb` override the parser's limits for this document.
        """
        return self.run_in_child(
            _parse_document,
            data,
            filename,
            content_type,
            timeout=timeout,
            memory_limit_mb=memory_limit_mb,
        )

    def run_in_child(
        self,
        job: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
    ) -> T:
        """`job(*args)` in a fresh child under this parser's limits; `job` must be importable."""
        limit = self.timeout if timeout is None else timeout
        memory = self.memory_limit_mb if memory_limit_mb is None else memory_limit_mb
        request: protocol.Request = (job, args, limit, memory * 1024 * 1024)
        with self._lock:
            connection = self._ensure_server()
            try:
                connection.send(request)
            except OSError:  # the server died since the last document: start another
                logger.warning("the parsing server died between documents; starting it again")
                self._stop_server()
                connection = self._ensure_server()
                connection.send(request)
            try:
                # The server kills a child at its time limit; this wait only guards the server.
                if not connection.poll(limit + SERVER_GRACE_SECONDS):
                    raise ParserCrashed("the parsing server stopped responding")
                reply = connection.recv()
            except (OSError, EOFError, ParserCrashed) as exc:
                self._stop_server()
                if isinstance(exc, ParserCrashed):
                    raise
                raise ParserCrashed(f"the parsing server died ({exc!r})") from exc
        return cast(T, protocol.result_of(reply))

    def close(self) -> None:
        """Stop the parsing server and any parse in progress (which raises ParserCrashed)."""
        self._closed = True
        server = self._server
        if server is not None:
            server.kill()  # without waiting for the lock a parse in progress holds
        with self._lock:
            self._stop_server()

    def _ensure_server(self) -> Connection:
        if self._closed:
            raise RuntimeError("the parser is closed")
        if self._connection is not None and self._server is not None:
            # Between requests the server never writes: anything to read means it hung up.
            if self._server.poll() is None and not self._connection.poll(0):
                return self._connection
            logger.warning("the parsing server exited (%s); starting it again", self._server.poll())
            self._stop_server()
        started = time.monotonic()
        ours, theirs = socket.socketpair()
        environment = {
            **os.environ,
            **UNSTRUCTURED_ENVIRONMENT,
            # The server must import what the caller can (Quire, and jobs defined in tests).
            "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        }
        with theirs:
            server = subprocess.Popen(
                [sys.executable, "-c", f"{SERVER_COMMAND}({theirs.fileno()})"],
                pass_fds=[theirs.fileno()],
                env=environment,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the worker is the worker's to handle
            )
        connection = Connection(ours.detach())
        self._server, self._connection = server, connection
        try:
            if not connection.poll(self.startup_timeout):
                raise ParserUnavailable(f"the parsing server did not start within {self.startup_timeout:g} s")
            status, detail = connection.recv()
        except (OSError, EOFError) as exc:
            self._stop_server()
            raise ParserUnavailable(
                f"the parsing server exited while starting (status {server.wait()}); "
                "see its error output above"
            ) from exc
        except ParserUnavailable:
            self._stop_server()
            raise
        if status != protocol.READY:
            self._stop_server()
            raise ParserUnavailable(str(detail))
        logger.info(
            "parsing server %s ready in %.1f s (imports %.1f s)",
            server.pid,
            time.monotonic() - started,
            detail["prepare_seconds"],
        )
        return connection

    def _stop_server(self) -> None:
        server, connection = self._server, self._connection
        self._server = self._connection = None
        if connection is not None:
            connection.close()  # the server exits when its connection closes
        if server is None:
            return
        try:
            server.wait(timeout=2)
        except subprocess.TimeoutExpired:
            server.kill()  # a child it forked dies with it (PR_SET_PDEATHSIG)
            server.wait()

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parse_document(data: bytes, filename: str | None, declared: str | None) -> ParsedDocument:
    """The job `Parser.parse` sends: it runs in a parsing child, so unstructured is imported there."""
    from quire.content.parsing.document import parse_document
    from quire.content.parsing.preparation import readiness

    readiness()
    return parse_document(data, filename=filename, declared=declared)
