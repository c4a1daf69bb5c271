"""How one file is parsed: its type, the refusals, its partitioner, Quire's elements, their quality.

This is the work a parsing child does for `Parser.parse`, and it knows nothing of the child: it
runs in any process that `preparation.prepare` has readied (the child inherits that from the
server). Raises `ParseFailure` subclasses.
"""

from __future__ import annotations

from quire.content.parsing.content_type import detect_content_type
from quire.content.parsing.conversion import to_parsed_elements
from quire.content.parsing.errors import CorruptFile, ParseFailure, ParserUnavailable, UnsupportedFileType
from quire.content.parsing.offline import NetworkAccessForbidden
from quire.content.parsing.partitioners import PAGED, partition
from quire.content.parsing.quality import encrypted_email, review
from quire.content.parsing.refusals import (
    corrupt_reason,
    refuse_encrypted,
    refuse_long_lines,
    refuse_unsupported,
)
from quire.content.parsing.results import ParsedDocument
from quire.content.transcripts import read_transcript


def parse_document(
    data: bytes, *, filename: str | None = None, declared: str | None = None
) -> ParsedDocument:
    """Parse one document in this (prepared) process; raises ParseFailure subclasses."""
    from unstructured.file_utils.model import FileType

    content_type = detect_content_type(data, filename, declared)
    file_type = FileType.from_mime_type(content_type) or FileType.UNK
    if file_type is FileType.EMPTY:
        return ParsedDocument(content_type=content_type, elements=(), page_count=None)
    refuse_unsupported(file_type, content_type)
    refuse_encrypted(data, file_type)
    refuse_long_lines(data, file_type)
    if file_type.name == "JSON" and (turns := read_transcript(data)) is not None:
        return ParsedDocument(content_type=content_type, elements=tuple(turns), page_count=None)
    try:
        elements, page_count = partition(data, file_type, filename)
    except (ParseFailure, MemoryError, NetworkAccessForbidden):
        raise
    except ImportError as exc:
        raise ParserUnavailable(f"a parser dependency is missing: {exc}") from exc
    except Exception as exc:
        raise CorruptFile(f"could not parse the {file_type.name} file: {corrupt_reason(exc)}") from exc
    parsed = tuple(to_parsed_elements(elements, paged=file_type.name in PAGED))
    if file_type.name == "PDF" and not parsed and page_count:
        raise UnsupportedFileType(
            f"the PDF has {page_count} page(s) but no text layer (a scan?); Quire does not run OCR"
        )
    if page_count is None and file_type.name in PAGED:
        page_count = max((e.page for e in parsed if e.page is not None), default=None)
    encrypted = encrypted_email(data) if file_type.name == "EML" else None
    return ParsedDocument(
        content_type=content_type,
        elements=parsed,
        page_count=page_count,
        warnings=review(parsed, encrypted=encrypted),
    )
