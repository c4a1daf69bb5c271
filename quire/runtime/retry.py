"""How often and how patiently a failing step is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: attempt n waits about base * 2**(n-1), capped."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after `failed_attempts` failures (half fixed, half random)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, failed_attempts - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
