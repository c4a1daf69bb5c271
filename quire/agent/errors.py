"""What the agent raises when a request cannot start a run, or a tool call cannot finish
(providers have their own family)."""

from __future__ import annotations

from quire.core.errors import InvalidRequest, QuireError, ServiceUnavailable


class AgentError(QuireError):
    """Base class for what the agent raises (providers: `ProviderError`; MCP: `McpError`)."""

    code = "agent_error"


class BudgetOverMaximum(AgentError, InvalidRequest):
    """A run's budget asks for more than its starter's role may give a run."""

    code = "budget_over_maximum"


class ToolTimedOut(AgentError, ServiceUnavailable):
    """A tool call did not finish within its time limit; its attempt was abandoned."""

    code = "tool_timed_out"
