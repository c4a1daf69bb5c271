"""Why a document could not be parsed: one `ParseFailure` subclass per reason.

A failure crosses from the parsing child to the caller as its `code` and message (see
`protocol.py`), and `FAILURES` turns the code back into its class. The code ends on the version
as its error code, and `status` is the version status the failure leads to.
"""

from __future__ import annotations

from quire.content.errors import ContentError


class ParseFailure(ContentError):
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
