"""What a model call costs, from its usage and the target's prices.

Input tokens include cached ones: each token is priced once, at the cached price if it was read
from the provider's cache, at the cache-write price if it was written to it, and at the normal
input price otherwise. Output tokens include reasoning tokens (priced as output, once).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from quire.agent.config import ModelTarget
from quire.agent.messages import Usage

MILLION = 1_000_000


def cost_usd(usage: Usage, target: ModelTarget) -> float:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    plain = usage.input_tokens - cached - written
    price_cached = target.price_input if target.price_cached_input is None else target.price_cached_input
    price_write = target.price_input if target.price_cache_write is None else target.price_cache_write
    total = (
        plain * target.price_input
        + cached * price_cached
        + written * price_write
        + usage.output_tokens * target.price_output
    )
    return round(total / MILLION, 8)


class Budget(BaseModel):
    """Limits for one run; crossing one ends the run cleanly, with the reason."""

    # Each limit is positive and finite (null: the role's maximum); the bounds are those of a
    # role's maximum (quire.core.settings.RunBudgetMaximum).
    max_tokens: int | None = Field(default=200_000, gt=0, le=10**12)
    max_cost_usd: float | None = Field(default=1.0, gt=0, le=10**9, allow_inf_nan=False)
    max_steps: int | None = Field(default=24, gt=0, le=10**6, description="Model calls.")
    max_seconds: float | None = Field(default=600.0, gt=0, le=10**7, allow_inf_nan=False)


class Spend(BaseModel):
    usage: Usage = Usage()
    cost_usd: float = 0.0
    model_calls: int = 0

    def add(self, usage: Usage, cost: float) -> Spend:
        return Spend(
            usage=self.usage + usage,
            cost_usd=round(self.cost_usd + cost, 8),
            model_calls=self.model_calls + 1,
        )

    def exceeded(self, budget: Budget, *, elapsed_seconds: float) -> str | None:
        """The reason a budget is crossed, or None."""
        tokens = self.usage.input_tokens + self.usage.output_tokens
        if budget.max_tokens is not None and tokens >= budget.max_tokens:
            return f"the run used {tokens} tokens; its budget is {budget.max_tokens}"
        if budget.max_cost_usd is not None and self.cost_usd >= budget.max_cost_usd:
            return f"the run cost ${self.cost_usd:.4f}; its budget is ${budget.max_cost_usd:.4f}"
        if budget.max_steps is not None and self.model_calls >= budget.max_steps:
            return f"the run made {self.model_calls} model calls; its budget is {budget.max_steps}"
        if budget.max_seconds is not None and elapsed_seconds >= budget.max_seconds:
            return (
                f"the run worked {elapsed_seconds:.0f} s (waits do not count); "
                f"its budget is {budget.max_seconds:.0f} s"
            )
        return None
