"""Provider classes by name, and building one for a model target."""

from __future__ import annotations

from collections.abc import Mapping

from quire.agent.config import ModelTarget
from quire.agent.providers.base import Provider
from quire.core.errors import ConfigurationError


def builtin_providers() -> dict[str, type[Provider]]:
    """Quire's own provider classes by name; a process may add others (tests: a scripted model)."""
    from quire.agent.providers.anthropic import AnthropicProvider
    from quire.agent.providers.gemini import GeminiProvider
    from quire.agent.providers.offline import OfflineProvider
    from quire.agent.providers.openai import OpenAIProvider

    return {
        "openai": OpenAIProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
        "offline": OfflineProvider,
    }


def build_provider(target: ModelTarget, classes: Mapping[str, type[Provider]]) -> Provider:
    if target.provider not in classes:
        raise ConfigurationError(f"target {target.name!r} names unknown provider {target.provider!r}")
    return classes[target.provider](
        api_key=target.api_key(), base_url=target.base_url or None, timeout=target.timeout_seconds
    )
