"""Turning uploaded bytes into structured elements, in a child process with time and memory limits.

`Parser` starts a parsing server, a separate Python process (`quire.content.parsing_child`) that
imports unstructured, loads spaCy's model and applies Quire's patches once. For each document the
server forks a child that caps its own address space with `RLIMIT_AS`, parses, and writes the
result back; the server kills a child that runs past the time limit. A hostile file (a zip bomb,
a huge PDF, malformed XML) can kill only that child: the caller gets a typed `ParseFailure` and
the next document parses in a fresh child. The calling process, which may be multi-threaded,
never forks.
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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar, cast

from quire.core.errors import QuireError

logger = logging.getLogger(__name__)

T = TypeVar("T")

SERVER_COMMAND = "from quire.content.parsing_child import serve; serve"
# How long past a parse's time limit the caller waits before it gives the server up for dead.
SERVER_GRACE_SECONDS = 30.0

# Set in the parsing processes before unstructured is imported: unstructured otherwise pings
# its telemetry endpoint and runs nvidia-smi on import, and prints an advertisement per process.
UNSTRUCTURED_ENVIRONMENT = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


# --- Errors (to move to quire/content/errors.py) ---------------------------------------------


class ParseFailure(QuireError):
    """A document could not be turned into elements; `status` is the version status it leads to."""

    code = "parse_failed"
    status = "failed"


class UnsupportedFileType(ParseFailure):
    """The file's type is not one Quire can parse (including images, which would need OCR)."""

    code = "unsupported"
    status = "unsupported"


class EncryptedFile(ParseFailure):
    """The file is protected by a password."""

    code = "encrypted"


class CorruptFile(ParseFailure):
    """The parser rejected the file; the message carries its reason."""

    code = "corrupt"


class ParseTimeout(ParseFailure):
    """Parsing took longer than the time limit."""

    code = "timeout"


class ParseMemoryExceeded(ParseFailure):
    """Parsing needed more memory than the memory limit."""

    code = "memory_limit"


class ParserCrashed(ParseFailure):
    """The parsing child died (killed by a signal, or failed unexpectedly); worth a retry."""

    code = "parser_crashed"


class ParserUnavailable(ParserCrashed):
    """The parsing server could not be prepared (a missing package or model, a broken patch).

    The machine's fault, not the file's: retryable like a crash, once the machine is fixed.
    """

    code = "parser_unavailable"


FAILURES: dict[str, type[ParseFailure]] = {
    cls.code: cls
    for cls in (
        ParseFailure,
        UnsupportedFileType,
        EncryptedFile,
        CorruptFile,
        ParseTimeout,
        ParseMemoryExceeded,
        ParserCrashed,
        ParserUnavailable,
    )
}


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedElement:
    """One element of a document: a title, a paragraph, a list item, a table, ..."""

    type: str
    text: str
    html: str | None = None
    page: int | None = None
    section_path: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedDocument:
    """The elements of one document, in reading order."""

    content_type: str
    elements: tuple[ParsedElement, ...]
    page_count: int | None = None

    @property
    def empty(self) -> bool:
        return not any(element.text.strip() for element in self.elements)


# --- Content type ----------------------------------------------------------------------------


def use_quiet_unstructured_environment() -> None:
    """Opt out of unstructured's telemetry and notices before it is first imported."""
    for name, value in UNSTRUCTURED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


# Declared types that may refine what the bytes say when they only say "plain text".
_TEXT_REFINEMENTS = {"MD", "RST", "ORG", "CSV", "TSV"}


def detect_content_type(data: bytes, filename: str | None = None, declared: str | None = None) -> str:
    """The MIME type of `data`, from its bytes first, then its file name.

    The declared type (an upload's Content-Type) is only used to refine plain text into a text
    format the bytes cannot prove (Markdown, CSV, ...); a wrong declared type changes nothing else.
    """
    use_quiet_unstructured_environment()
    from io import BytesIO

    from unstructured.file_utils.filetype import detect_filetype
    from unstructured.file_utils.model import FileType

    if not data or data.isspace():
        return FileType.EMPTY.mime_type
    if _is_encrypted_ooxml(data):
        # An encrypted .docx/.xlsx/.pptx is an OLE container; only its name tells which it was.
        by_name = FileType.from_extension(_extension(filename))
        return by_name.mime_type if by_name is not None else "application/x-ole-storage"
    try:
        file_type = detect_filetype(file=BytesIO(data), metadata_file_path=filename)
    except Exception as exc:  # a malformed OLE or zip directory, undecodable text
        logger.info("content type detection failed (%s); using libmagic alone", exc)
        file_type = FileType.UNK
    if file_type is FileType.TXT and declared:
        refined = FileType.from_mime_type(declared.split(";")[0].strip().lower())
        if refined is not None and refined.name in _TEXT_REFINEMENTS:
            file_type = refined
    if file_type is FileType.UNK:
        import magic

        return str(magic.from_buffer(data[:65536], mime=True))
    return file_type.mime_type


def _extension(filename: str | None) -> str:
    return os.path.splitext(filename)[1].lower() if filename else ""


def _is_encrypted_ooxml(data: bytes) -> bool:
    if not data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return False
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            return bool(ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage"))
    except Exception:
        return False


# --- The parser ------------------------------------------------------------------------------


class Parser:
    """One per worker process. Parses in a child process with a time limit and a memory limit.

    The first use starts the parsing server (`python -c "...parsing_child.serve(...)"`), which
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
        request = (job, args, limit, memory * 1024 * 1024)
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
        if reply[0] == "ok":
            return cast(T, reply[1])
        _, code, message = reply
        raise FAILURES.get(code, ParseFailure)(message)

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
        if status != "ready":
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
    from quire.content import parsing_child

    return parsing_child.parse_document(data, filename=filename, declared=declared)
