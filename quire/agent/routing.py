"""Routing a model call along its route's targets, with fallbacks, a shared circuit breaker, and
throttling that parks the run instead of retrying in a loop.

For each target in order: skip it while its circuit is open; call it; on a rate limit, outage or
malformed answer try the next one. When no target answers, a rate limit parks the run until the
earliest Retry-After (RetryAfter); an outage fails the attempt so the runtime retries the step
later with back-off; anything else (authentication everywhere, an invalid request) ends the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from pydantic import BaseModel

from quire.agent.circuit import CircuitBreaker
from quire.agent.config import ModelsConfig, ModelTarget
from quire.agent.costs import cost_usd
from quire.agent.messages import Completion, CompletionRequest
from quire.agent.providers.base import DeltaCallback, Provider
from quire.agent.providers.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextTooLong,
    InvalidProviderRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from quire.agent.providers.factory import build_provider, builtin_providers
from quire.core.logcontext import redact
from quire.core.models import utcnow
from quire.runtime.errors import NonRetryable, RetryAfter

logger = logging.getLogger(__name__)

DEFAULT_THROTTLE_SECONDS = 10.0


class Attempt(BaseModel):
    target: str
    outcome: str  # ok, rate_limited, unavailable, circuit_open, context_too_long, auth, …
    error: str | None = None
    retry_after: float | None = None


class ModelCall(BaseModel):
    """A model call as the run records it (what a replay gets back instead of calling again)."""

    completion: Completion
    target: str
    model: str
    cost_usd: float
    attempts: list[Attempt]
    latency_ms: float
    finished_at: datetime


def _noted(target: str, outcome: str, error: Exception) -> str:
    """The provider's error, logged, with any credential it quotes masked: providers echo keys
    back in their auth errors, and the text goes on into run errors, events and the API."""
    message = redact(str(error))
    logger.warning("model target %s: %s: %s", target, outcome, message)
    return message


class AllTargetsFailed(NonRetryable):
    code = "all_targets_failed"


class Router:
    def __init__(
        self,
        config: ModelsConfig,
        breaker: CircuitBreaker | None = None,
        providers: Mapping[str, type[Provider]] | None = None,
    ) -> None:
        self.config = config
        self.breaker = breaker
        self.providers = dict(providers) if providers is not None else builtin_providers()

    def complete(
        self,
        route_name: str | None,
        make_request: Callable[[ModelTarget], CompletionRequest],
        *,
        on_delta: DeltaCallback | None = None,
    ) -> ModelCall:
        route = self.config.route(route_name)
        attempts: list[Attempt] = []
        for name in route.targets:
            target = self.config.targets[name]
            if self.breaker is not None and not self.breaker.allows(name):
                attempts.append(Attempt(target=name, outcome="circuit_open"))
                continue
            started = time.perf_counter()
            try:
                completion = build_provider(target, self.providers).complete(
                    make_request(target), on_delta=on_delta
                )
            except RateLimited as error:
                attempts.append(
                    Attempt(
                        target=name,
                        outcome="rate_limited",
                        error=_noted(name, "rate_limited", error),
                        retry_after=error.retry_after,
                    )
                )
                continue
            except (ContentFiltered, InvalidProviderRequest) as error:
                raise NonRetryable(f"{name}: {_noted(name, 'refused', error)}") from error
            except ContextTooLong as error:
                attempts.append(
                    Attempt(
                        target=name, outcome="context_too_long", error=_noted(name, "context_too_long", error)
                    )
                )
                continue
            except (AuthenticationFailed, ProviderUnavailable, ProviderError) as error:
                outcome = "auth" if isinstance(error, AuthenticationFailed) else "unavailable"
                message = _noted(name, outcome, error)
                attempts.append(Attempt(target=name, outcome=outcome, error=message))
                if self.breaker is not None:
                    self.breaker.failed(name, message)
                continue
            if self.breaker is not None:
                self.breaker.succeeded(name)
            attempts.append(Attempt(target=name, outcome="ok"))
            return ModelCall(
                completion=completion,
                target=name,
                model=target.model,
                cost_usd=cost_usd(completion.usage, target),
                attempts=attempts,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                finished_at=utcnow(),
            )
        raise self._failure(route.name, attempts)

    @staticmethod
    def _failure(route: str, attempts: list[Attempt]) -> Exception:
        summary = "; ".join(
            f"{a.target}: {a.outcome}" + (f" ({a.error})" if a.error else "") for a in attempts
        )
        # Throttled only when a provider asked for a wait: a circuit opened by failures is an
        # outage, which spends the step's attempts and ends the run `provider_unavailable`,
        # instead of parking it again and again for as long as the outage lasts.
        if any(a.outcome == "rate_limited" for a in attempts):
            throttled = [a for a in attempts if a.outcome in ("rate_limited", "circuit_open")]
            waits = [a.retry_after for a in throttled if a.retry_after is not None]
            seconds = min(waits) if waits else DEFAULT_THROTTLE_SECONDS
            return RetryAfter(seconds, f"every target of route {route!r} is throttled ({summary})")
        if any(a.outcome in ("unavailable", "circuit_open") for a in attempts):
            return ProviderUnavailable(f"no target of route {route!r} is available: {summary}")
        return AllTargetsFailed(f"no target of route {route!r} could answer: {summary}")
