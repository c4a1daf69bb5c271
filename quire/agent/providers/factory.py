"""Provider classes by name, and building one for a model target."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from quire.agent.config import ModelTarget
from quire.agent.providers.base import Provider
from quire.core.errors import ConfigurationError

# Quire's own providers, by name: where each class lives. A process imports a provider's module
# (and its SDK, up to 1.5 s) only when a target names it (`ProviderClasses`).
BUILTIN_PROVIDERS = {
    "openai": ("quire.agent.providers.openai", "OpenAIProvider"),
    "anthropic": ("quire.agent.providers.anthropic", "AnthropicProvider"),
    "gemini": ("quire.agent.providers.gemini", "GeminiProvider"),
    "offline": ("quire.agent.providers.offline", "OfflineProvider"),
}


class ProviderClasses(Mapping[str, type[Provider]]):
    """Provider classes by name, each imported the first time it is looked up."""

    def __init__(self, locations: Mapping[str, tuple[str, str]]) -> None:
        self.locations = dict(locations)
        self.loaded: dict[str, type[Provider]] = {}

    def __getitem__(self, name: str) -> type[Provider]:
        if name not in self.loaded:
            module, attribute = self.locations[name]
            self.loaded[name] = getattr(importlib.import_module(module), attribute)
        return self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.locations)

    def __len__(self) -> int:
        return len(self.locations)


def builtin_providers() -> ProviderClasses:
    """Quire's own provider classes by name; a process may add others (tests: a scripted model)."""
    return ProviderClasses(BUILTIN_PROVIDERS)


def build_provider(target: ModelTarget, classes: Mapping[str, type[Provider]]) -> Provider:
    if target.provider not in classes:
        raise ConfigurationError(f"target {target.name!r} names unknown provider {target.provider!r}")
    return classes[target.provider](
        api_key=target.api_key(), base_url=target.base_url or None, timeout=target.timeout_seconds
    )
