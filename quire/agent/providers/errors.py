"""What a provider call can fail with: one small family for every provider.

Adapters translate their SDK's exceptions into these; the runtime decides on `retryable` (and
`RateLimited.retry_after`) alone, never on a provider's own error classes.
"""

from __future__ import annotations

import re

from quire.core.errors import QuireError


class ProviderError(QuireError):
    """Base class for errors of a model provider."""

    code = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        # The wait the provider asked for (a 429's or a 503's Retry-After), if any.
        self.retry_after = retry_after


class RateLimited(ProviderError):
    """The provider refused the call for now; `retry_after` is the wait it asked for, if any."""

    code = "rate_limited"
    retryable = True


class ProviderUnavailable(ProviderError):
    """The provider is overloaded, failing, or could not be reached in time; `retry_after` is the
    wait it asked for (a 503's Retry-After), if any."""

    code = "provider_unavailable"
    retryable = True


class ContextTooLong(ProviderError):
    """The prompt does not fit the model's context window."""

    code = "context_too_long"


class InvalidProviderRequest(ProviderError):
    """The provider rejected the request as malformed or unsupported (unknown model, bad schema)."""

    code = "invalid_provider_request"


class AuthenticationFailed(ProviderError):
    """The API key is missing, wrong, or not allowed to do this."""

    code = "provider_authentication_failed"


class ContentFiltered(ProviderError):
    """The model refused, or the provider's safety system blocked the prompt or the answer."""

    code = "content_filtered"


class MalformedResponse(ProviderError):
    """The provider answered with something that is not a usable completion."""

    code = "malformed_response"
    retryable = True


_CONTEXT_OVERFLOW = re.compile(
    r"context[ _-]?length|context[ _-]?window|maximum context|context size|prompt is too long"
    r"|too many (input )?tokens|input token count|exceeds? the maximum number of tokens"
    r"|exceed_context|input length and `?max_tokens`? exceed|reduce the length of the messages",
    re.IGNORECASE,
)


def is_context_overflow(message: str) -> bool:
    """Whether a provider's error message says the prompt is too long for the model."""
    return bool(_CONTEXT_OVERFLOW.search(message))


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    retry_after: float | None = None,
) -> ProviderError:
    """The error for an HTTP status, for what the provider-specific checks left over.

    `retry_after` counts for a 429 and a 503, the statuses whose Retry-After says when to come back.
    """
    if status == 429:
        return RateLimited(message, retry_after=retry_after, provider=provider, status_code=status)
    if status in (401, 402, 403):
        return AuthenticationFailed(message, provider=provider, status_code=status)
    if status == 413 or (400 <= status < 500 and is_context_overflow(message)):
        return ContextTooLong(message, provider=provider, status_code=status)
    if status in (408, 409) or status >= 500:
        wait = retry_after if status == 503 else None
        return ProviderUnavailable(message, retry_after=wait, provider=provider, status_code=status)
    return InvalidProviderRequest(message, provider=provider, status_code=status)
