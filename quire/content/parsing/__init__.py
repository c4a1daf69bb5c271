"""Turning uploaded bytes into structured elements, in a child process with time and memory limits.

The caller's side is `Parser` (`parser.py`) and `detect_content_type`; importing this package
does not import unstructured. The rest runs in the parsing server and its children:

- the process: `server.py` (the server's loop), `protocol.py` (its messages with `Parser`),
  `children.py` (forked children and their loop), `frames.py` (their pipes), `sandbox.py` (time
  and memory limits), `offline.py` (no network), `logs.py` (its log lines), `preparation.py`
  (imports and patches, once);
- one file: `document.py` (the steps), `refusals.py` (what is refused, and why),
  `partitioners.py` (which partitioner reads which type), `pdf.py` (PDF text layers),
  `encoding.py` (text encodings), `conversion.py` (unstructured's elements to Quire's),
  `quality.py` (garbled text flagged, letter-spaced words joined),
  `spacy_model.py` (spaCy's model without a download).
"""

from quire.content.parsing.content_type import detect_content_type
from quire.content.parsing.errors import (
    FAILURES,
    CorruptFile,
    EncryptedFile,
    ParseFailure,
    ParseMemoryExceeded,
    ParserCrashed,
    ParserUnavailable,
    ParseTimeout,
    UnsupportedFileType,
)
from quire.content.parsing.parser import Parser
from quire.content.parsing.quiet import UNSTRUCTURED_ENVIRONMENT, use_quiet_unstructured_environment
from quire.content.parsing.results import ParsedDocument, ParsedElement, QualityWarning

__all__ = [
    "FAILURES",
    "UNSTRUCTURED_ENVIRONMENT",
    "CorruptFile",
    "EncryptedFile",
    "ParseFailure",
    "ParseMemoryExceeded",
    "ParseTimeout",
    "ParsedDocument",
    "ParsedElement",
    "Parser",
    "ParserCrashed",
    "ParserUnavailable",
    "QualityWarning",
    "UnsupportedFileType",
    "detect_content_type",
    "use_quiet_unstructured_environment",
]
