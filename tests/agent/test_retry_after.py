"""Every form in which a provider says how long to wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from quire.agent.providers.retry_after import parse_duration, retry_after_seconds, retry_info_delay

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def rfc3339(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_nothing_said() -> None:
    assert retry_after_seconds({}, None, now=NOW) is None
    assert retry_after_seconds(None, {"error": {"code": 429}}, now=NOW) is None
    assert retry_after_seconds({"retry-after": "soon"}, now=NOW) is None


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0", 0.0), ("1.5", 1.5), (" 20 ", 20.0)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert retry_after_seconds({"Retry-After": value}, now=NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert when.endswith("GMT")
    assert retry_after_seconds({"retry-after": when}, now=NOW) == 90.0


def test_retry_after_ms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250"}, now=NOW) == 0.25


def test_milliseconds_are_more_specific_than_seconds() -> None:
    headers = {"retry-after": "1", "retry-after-ms": "1250"}
    assert retry_after_seconds(headers, now=NOW) == 1.25


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("20ms", 0.02),
        ("7.66s", 7.66),
    ],
)
def test_openai_reset_durations(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    assert retry_after_seconds({"x-ratelimit-reset-tokens": value}, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "5", "1x", "s", "1s garbage"])
def test_not_durations(value: str) -> None:
    assert parse_duration(value) is None


def test_the_exhausted_limit_decides() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "15000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_after_seconds(headers, now=NOW) == 2.0


def test_without_remaining_counts_the_longest_reset_wins() -> None:
    headers = {"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "1m30s"}
    assert retry_after_seconds(headers, now=NOW) == 90.0


def test_a_retry_after_header_beats_the_reset_headers() -> None:
    headers = {"retry-after": "3", "x-ratelimit-reset-tokens": "6m0s"}
    assert retry_after_seconds(headers, now=NOW) == 3.0


@pytest.mark.parametrize(
    "value",
    [rfc3339(45), "2026-03-01T12:00:45+00:00", "2026-03-01T12:00:45.000000123Z"],
)
def test_anthropic_reset_timestamps(value: str) -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": value,
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": rfc3339(1),
    }
    assert retry_after_seconds(headers, now=NOW) == pytest.approx(45.0)


def test_anthropic_retry_after_wins_over_its_reset_timestamps() -> None:
    headers = {
        "retry-after": "12",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": rfc3339(40),
    }
    assert retry_after_seconds(headers, now=NOW) == 12.0


@pytest.mark.parametrize(("delay", "seconds"), [("3s", 3.0), ("3.5s", 3.5), ("0s", 0.0)])
def test_gemini_retry_info(delay: str, seconds: float) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        }
    }
    assert retry_info_delay(body) == seconds
    assert retry_after_seconds({}, body, now=NOW) == seconds
    assert retry_after_seconds({}, [body], now=NOW) == seconds  # some gateways wrap it in a list


def test_gemini_retry_info_as_a_proto_duration() -> None:
    detail = {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": {"seconds": 2, "nanos": 500_000_000},
    }
    assert retry_after_seconds({}, {"error": {"details": [detail]}}, now=NOW) == 2.5


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "-5"},
        {"retry-after-ms": "-100"},
        {"retry-after": format_datetime(NOW - timedelta(minutes=1), usegmt=True)},
        {"anthropic-ratelimit-requests-reset": rfc3339(-30)},
    ],
)
def test_the_past_means_now(headers: dict[str, str]) -> None:
    assert retry_after_seconds(headers, now=NOW) == 0.0


def test_nonsense_numbers_are_ignored() -> None:
    assert retry_after_seconds({"retry-after-ms": "nan", "retry-after": "4"}, now=NOW) == 4.0
    assert retry_after_seconds({"retry-after": "inf"}, now=NOW) is None
