"""Readying a process to parse, once: logs, quiet, offline, partitioners imported, patches applied, warm.

The parsing server prepares itself when it starts, and the children it forks inherit all of it
(about 7 s of imports and spaCy's model), so a document pays only for its own parse. A failure
is kept, not raised: the server reports it to the caller as ParserUnavailable instead of dying
with a traceback only its stderr shows.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import sys
import time
from typing import Any

from quire.content.parsing.document import parse_document
from quire.content.parsing.errors import ParserUnavailable
from quire.content.parsing.logs import configure_parsing_logs
from quire.content.parsing.offline import forbid_network
from quire.content.parsing.partitioners import PARTITIONERS
from quire.content.parsing.pdf import refuse_pdf_reference_loops, route_pdfs_to_text_layer_partitioner
from quire.content.parsing.quiet import use_quiet_unstructured_environment
from quire.content.parsing.spacy_model import use_packaged_spacy_model

logger = logging.getLogger(__name__)

_prepared: dict[str, Any] = {}


def prepare() -> None:
    """Ready this process to parse: quiet, offline, partitioners imported, spaCy loaded.

    Runs once per process; `readiness` says how it went.
    """
    if _prepared:
        return
    started = time.monotonic()
    configure_parsing_logs()
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
        _import_parsers()
        use_packaged_spacy_model()
        route_pdfs_to_text_layer_partitioner()
        refuse_pdf_reference_loops()
        # Run each lazy path once (libmagic's database, spaCy's pipeline, pdfminer's fonts), so
        # that children inherit them warm.
        parse_document(b"The parser is warming up today.", filename="warm.txt")
        parse_document(_warm_up_pdf(), filename="warm.pdf")
        _prepared["error"] = None
    except BaseException as exc:
        logger.exception("preparing the parsing process failed")
        _prepared["error"] = f"{type(exc).__name__}: {exc}"
    _prepared["seconds"] = time.monotonic() - started


def readiness() -> dict[str, Any]:
    """How preparation went (preparing this process first): raises ParserUnavailable if it failed."""
    prepare()
    if _prepared["error"] is not None:
        raise ParserUnavailable(f"could not prepare the parser: {_prepared['error']}")
    return {"prepare_seconds": _prepared["seconds"]}


def _quiet_libraries() -> None:
    import warnings

    from unstructured.file_utils.encoding import EncodingDetectionWarning

    # Quire picks text encodings itself (see encoding.py); unstructured's detector still
    # guesses once while it sniffs the file type, and warns about its own guess.
    warnings.filterwarnings("ignore", category=EncodingDetectionWarning)
    # pypdf logs every repair it makes to a damaged PDF as a warning.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _import_parsers() -> None:
    for module, _, _ in PARTITIONERS.values():
        importlib.import_module(f"unstructured.partition.{module}")
    importlib.import_module("unstructured.partition.auto")
    importlib.import_module("unstructured.partition.pdf_image.pdfminer_utils")
    importlib.import_module("pypdf")
    importlib.import_module("msoffcrypto")


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
