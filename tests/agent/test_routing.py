"""Routing a model call along its route (agent/routing.py): fallbacks in order, targets whose
circuit is open skipped, and what the step is told when no target answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from quire.agent.circuit import THRESHOLD, CircuitBreaker
from quire.agent.config import ModelsConfig, ModelTarget, Route
from quire.agent.costs import MILLION
from quire.agent.messages import CompletionRequest, Message, Role
from quire.agent.providers.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextTooLong,
    InvalidProviderRequest,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from quire.agent.routing import DEFAULT_THROTTLE_SECONDS, AllTargetsFailed, Router
from quire.core.db import Database
from quire.core.errors import ConfigurationError
from quire.runtime.errors import NonRetryable, RetryAfter
from tests.agent.scripted import ScriptedProvider, install
from tests.services import PROVIDERS

# What each model does when called: answer (None), or raise.
Behaviour = ProviderError | None


@pytest.fixture
def models() -> Iterator[dict[str, Behaviour]]:
    """The scripted provider answering for every target, each by its model's behaviour."""
    behaviours: dict[str, Behaviour] = {}

    def script(request: CompletionRequest) -> Message:
        error = behaviours.get(request.model)
        if error is not None:
            raise error
        return Message(role=Role.assistant, content=f"answer from {request.model}")

    install(script)
    yield behaviours
    ScriptedProvider.script = None


def called() -> list[str]:
    return [request.model for request in ScriptedProvider.requests]


def target(name: str, **prices: float) -> ModelTarget:
    return ModelTarget(name=name, provider="scripted", model=f"m-{name}", **prices)


CONFIG = ModelsConfig(
    targets={
        "primary": target("primary", price_input=2.0, price_output=8.0),
        "backup": target("backup"),
        "last": target("last"),
    },
    routes={
        "default": Route(name="default", targets=["primary", "backup", "last"]),
        "cheap": Route(name="cheap", targets=["last", "primary"]),
    },
)


def request(target: ModelTarget) -> CompletionRequest:
    return CompletionRequest(
        model=target.model, messages=[Message(role=Role.user, content="Which class may I fly?")]
    )


def test_the_first_target_that_answers_is_used(models: dict[str, Behaviour]) -> None:
    call = Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert called() == ["m-primary"]
    assert call.target == "primary" and call.model == "m-primary"
    assert call.completion.message.content == "answer from m-primary"
    assert [(a.target, a.outcome) for a in call.attempts] == [("primary", "ok")]
    usage = call.completion.usage
    assert usage.input_tokens > 0
    assert call.cost_usd == pytest.approx((usage.input_tokens * 2.0 + usage.output_tokens * 8.0) / MILLION)
    assert call.latency_ms >= 0 and call.finished_at is not None


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RateLimited("slow down", retry_after=5), "rate_limited"),
        (ProviderUnavailable("503 overloaded"), "unavailable"),
        (MalformedResponse("no choices in the answer"), "unavailable"),
        (ContextTooLong("prompt is too long"), "context_too_long"),
        (AuthenticationFailed("invalid key"), "auth"),
    ],
)
def test_a_failing_target_falls_back_to_the_next_in_route_order(
    models: dict[str, Behaviour], error: ProviderError, outcome: str
) -> None:
    models["m-primary"] = error
    call = Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert called() == ["m-primary", "m-backup"]
    assert call.target == "backup" and call.completion.message.content == "answer from m-backup"
    assert [(a.target, a.outcome) for a in call.attempts] == [("primary", outcome), ("backup", "ok")]
    assert call.attempts[0].error == str(error)
    assert call.cost_usd == 0.0  # the backup's prices


def test_each_route_has_its_own_order(models: dict[str, Behaviour]) -> None:
    models["m-last"] = ProviderUnavailable("down")
    call = Router(CONFIG, providers=PROVIDERS).complete("cheap", request)
    assert called() == ["m-last", "m-primary"]
    assert call.target == "primary"


def test_an_unknown_route_is_a_configuration_error(models: dict[str, Behaviour]) -> None:
    with pytest.raises(ConfigurationError, match=r"no model route named 'fast'; known: cheap, default"):
        Router(CONFIG, providers=PROVIDERS).complete("fast", request)
    assert called() == []


@pytest.mark.parametrize(
    "error", [ContentFiltered("blocked by safety"), InvalidProviderRequest("unknown model")]
)
def test_a_refused_request_ends_the_step_without_trying_another_target(
    models: dict[str, Behaviour], error: ProviderError
) -> None:
    models["m-primary"] = error
    with pytest.raises(NonRetryable, match=f"primary: {error}"):
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert called() == ["m-primary"]


def test_when_every_target_is_throttled_the_run_waits_for_the_earliest_retry_after(
    models: dict[str, Behaviour],
) -> None:
    models["m-primary"] = RateLimited("429", retry_after=30)
    models["m-backup"] = RateLimited("429", retry_after=7.5)
    models["m-last"] = RateLimited("429")
    with pytest.raises(RetryAfter) as raised:
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert raised.value.seconds == 7.5
    assert "every target of route 'default' is throttled" in str(raised.value)
    assert called() == ["m-primary", "m-backup", "m-last"]


def test_a_throttle_without_retry_after_waits_the_default(models: dict[str, Behaviour]) -> None:
    models["m-primary"] = RateLimited("429")
    models["m-backup"] = ProviderUnavailable("503")  # a throttle anywhere parks the run
    models["m-last"] = AuthenticationFailed("401")
    with pytest.raises(RetryAfter) as raised:
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert raised.value.seconds == DEFAULT_THROTTLE_SECONDS


def test_when_targets_are_down_the_step_is_retried_later(models: dict[str, Behaviour]) -> None:
    models["m-primary"] = ProviderUnavailable("503")
    models["m-backup"] = AuthenticationFailed("401")
    models["m-last"] = ContextTooLong("too long")
    with pytest.raises(ProviderUnavailable) as raised:
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert raised.value.retryable
    assert str(raised.value) == (
        "no target of route 'default' is available: primary: unavailable (503); "
        "backup: auth (401); last: context_too_long (too long)"
    )


def test_when_no_target_can_answer_the_step_ends(models: dict[str, Behaviour]) -> None:
    models["m-primary"] = AuthenticationFailed("401")
    models["m-backup"] = ContextTooLong("too long")
    models["m-last"] = AuthenticationFailed("403")
    with pytest.raises(AllTargetsFailed) as raised:
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert isinstance(raised.value, NonRetryable) and raised.value.code == "all_targets_failed"
    assert "no target of route 'default' could answer" in str(raised.value)


def test_a_credential_in_a_providers_error_is_masked(models: dict[str, Behaviour]) -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    models["m-primary"] = AuthenticationFailed(f"Incorrect API key provided: {key}")
    call = Router(CONFIG, providers=PROVIDERS).complete(None, request)
    error = call.attempts[0].error
    assert error is not None and key not in error and "[redacted]" in error


# With the circuit breaker (in the test's rolled-back transaction).


def open_until_now(database: Database, name: str) -> None:
    with database.system_session() as session:
        session.execute(
            text("UPDATE agent_circuit SET retry_at = now() - interval '1 second' WHERE target = :t"),
            {"t": name},
        )
        session.commit()


def test_a_target_whose_circuit_is_open_is_skipped_until_its_retry_time(
    models: dict[str, Behaviour], database: Database
) -> None:
    breaker = CircuitBreaker(database)
    router = Router(CONFIG, breaker, PROVIDERS)
    models["m-primary"] = ProviderUnavailable("503")
    for _ in range(THRESHOLD):
        assert router.complete(None, request).target == "backup"
    assert breaker.state("primary")["state"] == "open"

    ScriptedProvider.requests.clear()
    call = router.complete(None, request)
    assert called() == ["m-backup"]  # the open circuit is not called at all
    assert [(a.target, a.outcome) for a in call.attempts] == [("primary", "circuit_open"), ("backup", "ok")]

    # Its retry time comes and it answers again: the trial call closes the circuit.
    del models["m-primary"]
    open_until_now(database, "primary")
    ScriptedProvider.requests.clear()
    assert router.complete(None, request).target == "primary"
    assert called() == ["m-primary"]
    assert breaker.state("primary")["state"] == "closed"


def test_failures_that_are_not_outages_do_not_open_a_circuit(
    models: dict[str, Behaviour], database: Database
) -> None:
    breaker = CircuitBreaker(database)
    router = Router(CONFIG, breaker, PROVIDERS)
    models["m-primary"] = RateLimited("429", retry_after=1)
    models["m-backup"] = ContextTooLong("too long")
    for _ in range(THRESHOLD + 1):
        assert router.complete(None, request).target == "last"
    primary = breaker.state("primary")  # it asked for a second's wait: kept, but no failure
    assert primary["state"] == "cooling_down" and primary["failures"] == 0
    assert breaker.state("backup") == {"state": "closed", "failures": 0}


def test_when_every_circuit_is_open_it_is_an_outage_not_a_wait(
    models: dict[str, Behaviour], database: Database
) -> None:
    """Circuits opened by failures are an outage: the attempt fails (and the step's attempts run
    out, ending the run provider_unavailable) instead of parking the run for as long as it lasts."""
    breaker = CircuitBreaker(database)
    for name in ("primary", "backup", "last"):
        for _ in range(THRESHOLD):
            breaker.failed(name, "503")
    with pytest.raises(ProviderUnavailable, match="circuit_open"):
        Router(CONFIG, breaker, PROVIDERS).complete(None, request)
    assert called() == []


# Retry-After on 503 as on 429, and a target's cool-down kept in the breaker table (issue 18).


def test_a_503_with_retry_after_is_a_throttle_not_an_outage(models: dict[str, Behaviour]) -> None:
    models["m-primary"] = ProviderUnavailable("503 overloaded", retry_after=20)
    models["m-backup"] = ProviderUnavailable("503 overloaded", retry_after=45)
    models["m-last"] = ProviderUnavailable("500")
    with pytest.raises(RetryAfter) as raised:
        Router(CONFIG, providers=PROVIDERS).complete(None, request)
    assert raised.value.seconds == 20


def retry_in(breaker: CircuitBreaker, name: str) -> float:
    retry_at = breaker.state(name)["retry_at"]
    assert isinstance(retry_at, datetime)
    return (retry_at - datetime.now(UTC)).total_seconds()


@pytest.mark.parametrize(
    "error", [RateLimited("429", retry_after=30), ProviderUnavailable("503", retry_after=30)]
)
def test_a_targets_retry_after_is_remembered_by_every_router(
    models: dict[str, Behaviour], database: Database, error: ProviderError
) -> None:
    models["m-primary"] = error
    assert Router(CONFIG, CircuitBreaker(database), PROVIDERS).complete(None, request).target == "backup"
    breaker = CircuitBreaker(database)  # another worker, another run, the next turn
    assert 28 < retry_in(breaker, "primary") <= 30
    assert breaker.state("primary")["failures"] == 0  # a wait it asked for is no failure

    ScriptedProvider.requests.clear()
    call = Router(CONFIG, breaker, PROVIDERS).complete(None, request)
    assert called() == ["m-backup"]  # not asked again while it cools down
    assert [(a.target, a.outcome) for a in call.attempts] == [("primary", "cooling_down"), ("backup", "ok")]
    assert call.attempts[0].retry_after is not None and 28 < call.attempts[0].retry_after <= 30


def test_when_every_target_cools_down_the_run_waits_for_the_first_to_be_free(
    models: dict[str, Behaviour], database: Database
) -> None:
    breaker = CircuitBreaker(database)
    breaker.retry_after("primary", 40, "429")
    breaker.retry_after("backup", 12, "503")
    breaker.retry_after("last", 90, "429")
    with pytest.raises(RetryAfter) as raised:
        Router(CONFIG, breaker, PROVIDERS).complete(None, request)
    assert 10 < raised.value.seconds <= 12
    assert called() == []


def test_a_cool_down_never_shortens_a_longer_one(database: Database) -> None:
    breaker = CircuitBreaker(database)
    breaker.retry_after("primary", 60, "429")
    breaker.retry_after("primary", 5, "429 again")
    assert 58 < retry_in(breaker, "primary") <= 60


def test_after_its_cool_down_a_target_is_free_for_everyone_at_once(
    models: dict[str, Behaviour], database: Database
) -> None:
    breaker = CircuitBreaker(database)
    breaker.retry_after("primary", 30, "429")
    assert not breaker.allows("primary")
    open_until_now(database, "primary")
    assert breaker.allows("primary") and breaker.allows("primary")  # no trial call: it was no outage
    assert Router(CONFIG, breaker, PROVIDERS).complete(None, request).target == "primary"
    assert breaker.state("primary")["retry_at"] is None
