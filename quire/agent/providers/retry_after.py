"""How long a provider asked us to wait, from whatever form its rate-limit answer took."""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

# Go-style durations, as OpenAI sends them in x-ratelimit-reset-*: "1s", "6m0s", "250ms", "1h2m3.5s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")

_RESET_HEADERS = {
    # reset header -> the header saying how much of that limit is left
    "x-ratelimit-reset-requests": "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-tokens": "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset": "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-reset": "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset": "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset": "anthropic-ratelimit-output-tokens-remaining",
}


def retry_after_seconds(
    headers: Mapping[str, str] | None,
    body: object = None,
    *,
    now: datetime | None = None,
    resets: bool = True,
) -> float | None:
    """Seconds to wait before retrying, or None when the server did not say.

    The most specific form wins: `retry-after-ms`, then `retry-after` (seconds or an HTTP
    date), then a google.rpc.RetryInfo in the error body, then (with `resets`: for a rate limit,
    not an outage) the reset times of the limits the headers show as exhausted (all of them
    when none is marked). Past times give 0.
    """
    now = now or datetime.now(UTC)
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    candidates = (
        _milliseconds(lowered.get("retry-after-ms")),
        _retry_after(lowered.get("retry-after"), now),
        retry_info_delay(body),
        _limit_resets(lowered, now) if resets else None,
    )
    for seconds in candidates:
        if seconds is not None:
            return max(seconds, 0.0)
    return None


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "250ms", "3.5s"), or None if it is not one."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def retry_info_delay(body: object) -> float | None:
    """The `retryDelay` of a google.rpc.RetryInfo anywhere in a Google error body."""
    for detail in _error_details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration(delay)
            if isinstance(delay, Mapping):
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
    return None


def _error_details(body: object) -> Iterable[Mapping[str, Any]]:
    if isinstance(body, list):
        for item in body:
            yield from _error_details(item)
    elif isinstance(body, Mapping):
        if "@type" in body:
            yield body
        for key in ("error", "details"):
            if key in body:
                yield from _error_details(body[key])


def _milliseconds(value: str | None) -> float | None:
    number = _number(value)
    return None if number is None else number / 1000.0


def _retry_after(value: str | None, now: datetime) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is not None:
        return number
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def _limit_resets(headers: Mapping[str, str], now: datetime) -> float | None:
    resets: list[tuple[float, bool]] = []
    for reset_header, remaining_header in _RESET_HEADERS.items():
        value = headers.get(reset_header)
        if value is None:
            continue
        seconds = parse_duration(value)
        if seconds is None:
            seconds = _timestamp_delay(value, now)
        if seconds is not None:
            resets.append((seconds, _number(headers.get(remaining_header)) == 0))
    exhausted = [seconds for seconds, is_exhausted in resets if is_exhausted]
    chosen = exhausted or [seconds for seconds, _ in resets]
    return max(chosen) if chosen else None


def _timestamp_delay(value: str, now: datetime) -> float | None:
    text = _LONG_FRACTION.sub(r"\1", value.strip())
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
