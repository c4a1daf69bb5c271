"""When to send a request again: a 429 or a 503, after the wait its Retry-After asks for."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx

RETRIED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` counts the first request. A Retry-After longer than `max_wait` is not waited
    for: the error goes to the caller, who may know better than to block that long."""

    attempts: int = 4
    max_wait: float = 60.0
    backoff: float = 0.5  # the first wait when the answer names none; doubled on each attempt

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up and raise."""
        if response.status_code not in RETRIED_STATUSES or attempt >= self.attempts:
            return None
        asked = retry_after(response.headers.get("Retry-After"))
        wait = asked if asked is not None else self.backoff * 2 ** (attempt - 1)
        return wait if wait <= self.max_wait else None


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
