"""Retry policies and time limits as data: a default per kind of step (model call, tool call),
from the settings; a route may change its model calls' policy (`Route.retry`, in the models
file), a tool its own policy and time limit (`Tool.retry`, `Tool.timeout_seconds`)."""

from __future__ import annotations

from dataclasses import dataclass

from quire.agent.config import Route
from quire.agent.tools.base import Tool
from quire.core.settings import RETRY_DEFAULTS, TOOL_TIMEOUT_SECONDS, RetrySetting, Settings
from quire.runtime.retry import RetryPolicy


def policy_of(setting: RetrySetting) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=setting.max_attempts, base_delay=setting.base_delay, max_delay=setting.max_delay
    )


MODEL_RETRY = policy_of(RETRY_DEFAULTS["model_retry"])
TOOL_RETRY = policy_of(RETRY_DEFAULTS["tool_retry"])


@dataclass(frozen=True)
class StepRetries:
    """The agent's defaults: how model and tool calls are tried again, and how long a tool may take."""

    model: RetryPolicy = MODEL_RETRY
    tool: RetryPolicy = TOOL_RETRY
    tool_timeout: float = TOOL_TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> StepRetries:
        return cls(
            model=policy_of(settings.model_retry),
            tool=policy_of(settings.tool_retry),
            tool_timeout=settings.tool_timeout_seconds,
        )

    def for_route(self, route: Route | None) -> RetryPolicy:
        """The policy of a model call along `route` (None: a route that does not exist, whose
        call fails by itself)."""
        if route is None or route.retry is None:
            return self.model
        return route.retry.over(self.model)

    def for_tool(self, tool: Tool) -> RetryPolicy:
        return tool.retry if tool.retry is not None else self.tool

    def timeout_for(self, tool: Tool) -> float:
        return tool.timeout_seconds if tool.timeout_seconds is not None else self.tool_timeout
