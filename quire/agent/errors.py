"""What the agent raises when a request cannot start a run (providers have their own family)."""

from __future__ import annotations

from quire.core.errors import InvalidRequest


class BudgetOverMaximum(InvalidRequest):
    """A run's budget asks for more than its starter's role may give a run."""

    code = "budget_over_maximum"
