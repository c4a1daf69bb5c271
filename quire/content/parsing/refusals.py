"""Files refused before a partitioner sees them, each with a typed reason a user can act on.

Images (they would need OCR), legacy Word and PowerPoint files (they would need LibreOffice;
legacy Excel files are read by xlrd) and types without a partitioner are unsupported; a PDF or
Office file that needs a password is encrypted; a CSV line too long for libxml2 to keep is
refused whole. `corrupt_reason` says why a parser rejected a file, in the words a user can read.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from quire.content.parsing.content_type import OLE_SIGNATURE
from quire.content.parsing.errors import CorruptFile, EncryptedFile, ParseFailure, UnsupportedFileType
from quire.content.parsing.offline import NetworkAccessForbidden
from quire.content.parsing.partitioners import PARTITIONERS

if TYPE_CHECKING:
    from unstructured.file_utils.model import FileType

IMAGES = {"BMP", "HEIC", "JPG", "PNG", "TIFF", "WEBP"}
LEGACY_OFFICE = {"DOC", "PPT"}
# unstructured builds a table's text from its HTML, and libxml2 drops a cell longer than 10 MB
# without a word; a CSV line this long is refused instead (a byte may become 3 in UTF-8).
MAX_DELIMITED_LINE_BYTES = 3 * 1024 * 1024
_FILE_OBJECT = re.compile(r"<_io\.BytesIO object at 0x[0-9a-f]+>")
_LXML_SOURCE = re.compile(r" \(<string>, line \d+\)$")


def refuse_unsupported(file_type: FileType, content_type: str) -> None:
    """Raise UnsupportedFileType for a type Quire has no partitioner for (UNK included)."""
    if file_type.name in IMAGES:
        raise UnsupportedFileType(f"{content_type} is an image without a text layer; Quire does not run OCR")
    if file_type.name in LEGACY_OFFICE:
        raise UnsupportedFileType(
            f"legacy Office files ({content_type}) need LibreOffice, which Quire does not use; "
            "save the file in the newer format (.docx, .pptx)"
        )
    if file_type.name != "PDF" and file_type.name not in PARTITIONERS:
        raise UnsupportedFileType(f"files of type {content_type} are not supported")


def refuse_encrypted(data: bytes, file_type: FileType) -> None:
    """Raise EncryptedFile for a PDF or Office file that needs a password to open."""
    if file_type.name == "PDF":
        _refuse_encrypted_pdf(data)
    elif data.startswith(OLE_SIGNATURE):
        import msoffcrypto

        try:
            encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
        except Exception:  # an OLE file that is not an Office document (an Outlook .msg)
            encrypted = False
        if encrypted:
            raise EncryptedFile(f"the {file_type.name} file is protected by a password")


def _refuse_encrypted_pdf(data: bytes) -> None:
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
        raise CorruptFile(
            f"could not parse the PDF file, which looks damaged ({corrupt_reason(exc)})"
        ) from exc


def refuse_long_lines(data: bytes, file_type: FileType) -> None:
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


def corrupt_reason(exc: Exception) -> str:
    """What a parser's exception says, without its Python or libxml2 internals."""
    if isinstance(exc, RecursionError):
        return "its structure nests too deeply, or refers to itself in a loop"
    reason = _LXML_SOURCE.sub("", _FILE_OBJECT.sub("the file", str(exc))).strip()
    return reason or type(exc).__name__
