"""The MIME type of an upload, from its bytes first: what a file claims to be changes little.

Used by the API when a file arrives (to store the version's type) and by the parsing child (to
pick a partitioner). unstructured is imported on first use only.
"""

from __future__ import annotations

import logging
import os

from quire.content.parsing.quiet import use_quiet_unstructured_environment

logger = logging.getLogger(__name__)

# Declared types that may refine what the bytes say when they only say "plain text".
_TEXT_REFINEMENTS = {"MD", "RST", "ORG", "CSV", "TSV"}
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


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
    if not data.startswith(OLE_SIGNATURE):
        return False
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            return bool(ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage"))
    except Exception:
        return False
