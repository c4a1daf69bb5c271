"""Rate limits on the console's forms: each session's, and failed logins per client address, so
that a loop guessing API keys is slowed to the limit. Pages that only show something never count.

A dependency of every console router rather than middleware, so that a refusal is a console page
(with Retry-After) like every other console error. Each API process keeps its own buckets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fastapi import Request

from quire.app.console.errors import TooManyRequests
from quire.app.console.session import COOKIE
from quire.app.ratelimit import TokenBuckets, retry_after

LOGIN_PATH = "/console/login"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class ConsoleThrottle:
    forms: TokenBuckets | None  # per session (per address without one)
    failed_logins: TokenBuckets | None  # per client address

    @classmethod
    def per_minute(cls, *, forms: int, failed_logins: int) -> ConsoleThrottle:
        """Buckets for the given limits; 0 turns one off."""
        return cls(
            forms=TokenBuckets(per_minute=forms) if forms else None,
            failed_logins=TokenBuckets(per_minute=failed_logins) if failed_logins else None,
        )


def _throttle(request: Request) -> ConsoleThrottle:
    throttle: ConsoleThrottle = request.app.state.console_throttle
    return throttle


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refuse(wait: float, source: str) -> TooManyRequests:
    seconds = retry_after(wait)
    return TooManyRequests(
        f"Too many {source}; try again in {seconds} s.", headers={"Retry-After": str(seconds)}
    )


def throttle_forms(request: Request) -> None:
    """Refuse a form over its limit with a 429 page.

    A login is refused while its address has no failed attempt left, even with the right key, so
    that the answer tells a guesser nothing; a successful login costs nothing.
    """
    if request.method in SAFE_METHODS:
        return
    throttle = _throttle(request)
    if request.url.path == LOGIN_PATH:
        if throttle.failed_logins is not None:
            wait = throttle.failed_logins.peek(_address(request))
            if wait > 0:
                raise _refuse(wait, "failed logins from this address")
        return
    if throttle.forms is None:
        return
    cookie = request.cookies.get(COOKIE)
    key = hashlib.sha256(cookie.encode()).hexdigest() if cookie else _address(request)
    wait = throttle.forms.take(key)
    if wait > 0:
        raise _refuse(wait, "forms sent from this session")


def count_failed_login(request: Request) -> None:
    """Take one of the address's failed attempts."""
    buckets = _throttle(request).failed_logins
    if buckets is not None:
        buckets.take(_address(request))
