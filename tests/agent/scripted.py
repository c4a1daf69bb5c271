"""A scripted model behind the Provider interface: tests decide each answer from the request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from quire.agent.messages import Completion, CompletionRequest, FinishReason, Message, Usage
from quire.agent.providers.base import DeltaCallback, Provider

Script = Callable[[CompletionRequest], Message]


class ScriptedProvider(Provider):
    name: ClassVar[str] = "scripted"
    default_base_url: ClassVar[str] = "scripted://"
    script: ClassVar[Script | None] = None
    requests: ClassVar[list[CompletionRequest]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(api_key=None, base_url="scripted://")

    def complete(self, request: CompletionRequest, *, on_delta: DeltaCallback | None = None) -> Completion:
        assert ScriptedProvider.script is not None, "no script set"
        ScriptedProvider.requests.append(request)
        message = ScriptedProvider.script(request)
        return Completion(
            message=message,
            usage=Usage(
                input_tokens=sum(len(m.content) for m in request.messages) // 4 + 10, output_tokens=20
            ),
            finish_reason=FinishReason.tool_calls if message.tool_calls else FinishReason.stop,
            model=request.model,
            provider=self.name,
        )


def install(script: Script) -> None:
    """Script the model of targets whose provider is "scripted" (tests/services.py knows it)."""
    ScriptedProvider.script = script
    ScriptedProvider.requests = []
