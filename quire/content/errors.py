"""What the content layer raises."""

from __future__ import annotations

from quire.core.errors import Conflict, InvalidRequest, NotFound, QuireError, TooLarge


class ContentError(QuireError):
    """Base class for content errors."""

    code = "content_error"


class DocumentNotFound(ContentError, NotFound):
    code = "document_not_found"


class VersionNotFound(ContentError, NotFound):
    code = "version_not_found"


class UploadTooLarge(ContentError, TooLarge):
    """The upload is over the configured size limit; nothing was stored."""

    code = "too_large"


class InvalidUpload(ContentError, InvalidRequest):
    """The upload is missing its file or names it in a way Quire cannot keep."""

    code = "invalid_upload"


class EmptyUpload(ContentError, InvalidRequest):
    """The upload has no bytes at all; nothing was stored."""

    code = "empty_file"


class VersionNotRetryable(ContentError, Conflict):
    """The version's ingestion did not fail (or would fail the same way again)."""

    code = "version_not_retryable"
