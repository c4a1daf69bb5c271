"""The root of Quire's exceptions; every package derives its own family from QuireError.

Each class carries a stable `code` that API clients can switch on; `app` maps classes to HTTP
statuses in one place.
"""

from __future__ import annotations


class QuireError(Exception):
    """Base class for every error Quire raises on purpose."""

    code = "error"


class ConfigurationError(QuireError):
    """A setting is missing, unknown or malformed."""

    code = "invalid_configuration"


class ServiceUnavailable(QuireError):
    """A service Quire depends on (database, broker) cannot be reached."""

    code = "service_unavailable"


class NotFound(QuireError):
    """The thing asked for does not exist, or the caller may not see it."""

    code = "not_found"


class Conflict(QuireError):
    """The request conflicts with the current state of the thing it names."""

    code = "conflict"


class InvalidRequest(QuireError):
    """The request is well-formed but asks for something that cannot be done."""

    code = "invalid_request"


class Unauthenticated(QuireError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthenticated"


class Forbidden(QuireError):
    """The caller's role does not allow this action."""

    code = "forbidden"


class OutboundRefused(InvalidRequest):
    """Quire will not connect there on a tenant's behalf (an internal address, credentials in a URL)."""

    code = "outbound_refused"


class TooLarge(QuireError):
    """The request carries more than a limit allows; nothing was stored."""

    code = "too_large"


class InternalError(QuireError):
    """Quire contradicts itself (a definition that cannot work): a bug, not the caller's fault."""

    code = "internal_error"
