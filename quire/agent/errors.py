"""What the agent raises when a request cannot start a run, or a tool call cannot finish
(providers have their own family)."""

from __future__ import annotations

from quire.core.errors import InvalidRequest, QuireError, ServiceUnavailable
from quire.runtime.errors import NonRetryable


class AgentError(QuireError):
    """Base class for what the agent raises (providers: `ProviderError`; MCP: `McpError`)."""

    code = "agent_error"


class BudgetOverMaximum(AgentError, InvalidRequest):
    """A run's budget asks for more than its starter's role may give a run."""

    code = "budget_over_maximum"


class UnknownRoute(AgentError, InvalidRequest):
    """A request names a model route the configuration does not have."""

    code = "unknown_route"


class TenantBudgetSpent(AgentError, NonRetryable):
    """The tenant's daily model budget is spent: no model call today, on any run."""

    code = "tenant_budget_exceeded"


# How an agent run that did not answer ended (`runtime_run.error_code`); docs/runtime.md lists them.
BUDGET_EXCEEDED = "budget_exceeded"  # the run's own budget: tokens, cost, model calls, working time
TENANT_BUDGET_EXCEEDED = TenantBudgetSpent.code
PROVIDER_UNAVAILABLE = "provider_unavailable"  # every target of the route failed, retries spent
MODEL_REFUSED = "model_refused"  # the provider refused the request (content filter, bad request)
CONFIGURATION = "configuration"  # the route or a target is not configured
INVALID_TOOL_CALLS = "invalid_tool_calls"  # the model kept calling tools wrongly
NO_ANSWER = "no_answer"  # the model ended without an answer (empty, or the turn cap reached)


class ToolTimedOut(AgentError, ServiceUnavailable):
    """A tool call did not finish within its time limit; its attempt was abandoned."""

    code = "tool_timed_out"
