"""Rate limits on the console's forms: each session's, and failed logins per client address, so
that a loop guessing API keys is slowed to the limit. Pages that only show something never count.

Review decisions (every form under /console/memory/) have a bucket of their own, with the same
rate but a burst of several minutes' worth: a person deciding by keyboard, a page load apart,
sends a hundred in a row without waiting, while a script that keeps going is held to the rate.

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
DECISIONS_PATH = "/console/memory/"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# How many minutes' worth of decisions a session may send at once: 120 at the default 60 a minute.
DECISION_BURST_MINUTES = 2


@dataclass(frozen=True)
class ConsoleThrottle:
    forms: TokenBuckets | None  # per session (per address without one)
    decisions: TokenBuckets | None  # review decisions, per session
    failed_logins: TokenBuckets | None  # per client address

    @classmethod
    def per_minute(cls, *, forms: int, failed_logins: int) -> ConsoleThrottle:
        """Buckets for the given limits; 0 turns one off."""
        return cls(
            forms=TokenBuckets(per_minute=forms) if forms else None,
            decisions=TokenBuckets(per_minute=forms, burst=forms * DECISION_BURST_MINUTES) if forms else None,
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
    deciding = request.url.path.startswith(DECISIONS_PATH)
    buckets = throttle.decisions if deciding else throttle.forms
    if buckets is None:
        return
    cookie = request.cookies.get(COOKIE)
    key = hashlib.sha256(cookie.encode()).hexdigest() if cookie else _address(request)
    wait = buckets.take(key)
    if wait > 0:
        raise _refuse(
            wait, "decisions sent from this session" if deciding else "forms sent from this session"
        )


def count_failed_login(request: Request) -> None:
    """Take one of the address's failed attempts."""
    buckets = _throttle(request).failed_logins
    if buckets is not None:
        buckets.take(_address(request))
