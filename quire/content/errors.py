"""What the content layer raises."""

from __future__ import annotations

from quire.core.errors import InvalidRequest, NotFound, QuireError, TooLarge


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
