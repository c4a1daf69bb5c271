"""Routing a model call along its route's targets, with fallbacks, a shared circuit breaker, and
throttling that parks the run instead of retrying in a loop.

For each target in order: skip it while its circuit is open or it cools down; call it; on a rate
limit, outage or malformed answer try the next one. A target that asks for a wait (a 429's or a
503's Retry-After) is kept away from for that long by every run (the breaker table). When no
target answers, a wait anywhere parks the run until the earliest one is over (RetryAfter); an
outage fails the attempt so the runtime retries the step later with back-off; anything else
(authentication everywhere, an invalid request) ends the step.
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
# Outcomes that park the run rather than fail the attempt (so does any with a retry_after).
THROTTLED = ("rate_limited", "circuit_open", "cooling_down")
ASKED_TO_WAIT = ("rate_limited", "cooling_down")  # a provider asked for the wait


class Attempt(BaseModel):
    target: str
    outcome: str  # ok, rate_limited, unavailable, circuit_open, cooling_down, context_too_long, auth, …
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
        self.providers = providers if providers is not None else builtin_providers()

    def warm_up(self) -> None:
        """Import the providers of the configured targets and their SDKs now, not on the first
        model call (a worker calls this when it starts). Calls out to nobody."""
        for target in self.config.targets.values():
            try:
                build_provider(target, self.providers).warm_up()
            except Exception:  # the first call will say what is wrong, with its context
                logger.warning("model target %s: warming up failed", target.name, exc_info=True)

    def complete(
        self,
        route_name: str | None,
        make_request: Callable[[ModelTarget], CompletionRequest],
        *,
        on_delta: DeltaCallback | None = None,
        on_fallback: Callable[[Attempt], None] | None = None,
    ) -> ModelCall:
        """The first answer along the route. `on_fallback` hears of each target that was called
        and failed (what it streamed through `on_delta` is void), before the next is tried."""
        route = self.config.route(route_name)
        attempts: list[Attempt] = []
        for name in route.targets:
            target = self.config.targets[name]
            blocked = self.breaker.blocked(name) if self.breaker is not None else None
            if blocked is not None:
                if blocked.open:
                    attempts.append(Attempt(target=name, outcome="circuit_open"))
                else:
                    attempts.append(
                        Attempt(target=name, outcome="cooling_down", retry_after=round(blocked.seconds, 3))
                    )
                continue
            started = time.perf_counter()
            completion = self._call(name, target, make_request, on_delta, attempts)
            if completion is None:
                if on_fallback is not None:
                    on_fallback(attempts[-1])
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

    def _call(
        self,
        name: str,
        target: ModelTarget,
        make_request: Callable[[ModelTarget], CompletionRequest],
        on_delta: DeltaCallback | None,
        attempts: list[Attempt],
    ) -> Completion | None:
        """The target's answer, or None (with the failure added to `attempts`) to try the next."""
        try:
            return build_provider(target, self.providers).complete(make_request(target), on_delta=on_delta)
        except RateLimited as error:
            message = _noted(name, "rate_limited", error)
            attempts.append(
                Attempt(target=name, outcome="rate_limited", error=message, retry_after=error.retry_after)
            )
            self._keep_away(name, error.retry_after, message)
        except (ContentFiltered, InvalidProviderRequest) as error:
            raise NonRetryable(f"{name}: {_noted(name, 'refused', error)}") from error
        except ContextTooLong as error:
            message = _noted(name, "context_too_long", error)
            attempts.append(Attempt(target=name, outcome="context_too_long", error=message))
        except ProviderUnavailable as error:
            message = _noted(name, "unavailable", error)
            attempts.append(
                Attempt(target=name, outcome="unavailable", error=message, retry_after=error.retry_after)
            )
            if error.retry_after is not None:  # it said when to come back: a wait, not a failure
                self._keep_away(name, error.retry_after, message)
            elif self.breaker is not None:
                self.breaker.failed(name, message)
        except (AuthenticationFailed, ProviderError) as error:
            outcome = "auth" if isinstance(error, AuthenticationFailed) else "unavailable"
            message = _noted(name, outcome, error)
            attempts.append(Attempt(target=name, outcome=outcome, error=message))
            if self.breaker is not None:
                self.breaker.failed(name, message)
        return None

    def _keep_away(self, target: str, seconds: float | None, reason: str) -> None:
        """Remember the wait a target asked for, for every run of the installation."""
        if self.breaker is not None and seconds is not None and seconds > 0:
            self.breaker.retry_after(target, seconds, reason)

    @staticmethod
    def _failure(route: str, attempts: list[Attempt]) -> Exception:
        summary = "; ".join(
            f"{a.target}: {a.outcome}" + (f" ({a.error})" if a.error else "") for a in attempts
        )
        # Throttled only when a provider asked for a wait (now or remembered): a circuit opened
        # by failures alone is an outage, which spends the step's attempts and ends the run
        # `provider_unavailable`, instead of parking it again and again while the outage lasts.
        asked = [a for a in attempts if a.outcome in ASKED_TO_WAIT or a.retry_after is not None]
        if asked:
            throttled = [a for a in attempts if a.outcome in THROTTLED or a.retry_after is not None]
            waits = [a.retry_after for a in throttled if a.retry_after is not None]
            seconds = min(waits) if waits else DEFAULT_THROTTLE_SECONDS
            return RetryAfter(seconds, f"every target of route {route!r} is throttled ({summary})")
        if any(a.outcome in ("unavailable", "circuit_open") for a in attempts):
            return ProviderUnavailable(f"no target of route {route!r} is available: {summary}")
        return AllTargetsFailed(f"no target of route {route!r} could answer: {summary}")
