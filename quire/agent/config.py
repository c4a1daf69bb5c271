"""Model targets and routes: which models exist, what they cost, and in which order to try them.

From a TOML file named by QUIRE_MODELS:

    [targets.mini]
    provider = "openai"            # openai | anthropic | gemini | offline
    model = "gpt-4.1-mini"
    base_url = ""                  # any OpenAI-compatible server: Ollama, vLLM, llama.cpp …
    api_key_env = "OPENAI_API_KEY" # the variable that holds the key (never the key itself)
    context_window = 128000
    capabilities = ["tools", "json"]
    price_input = 0.40             # USD per million input tokens (not cached)
    price_cached_input = 0.10
    price_output = 1.60

    [routes.default]
    targets = ["mini", "claude"]   # fallbacks in order
    retry = { max_attempts = 6, base_delay = 1.0, max_delay = 30.0 }  # optional; see agent/retries.py

or, for the simple case, QUIRE_MODEL="openai:gpt-4.1-mini" (a one-target route `default`). With
neither, the offline extractive provider answers.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quire.core.errors import ConfigurationError
from quire.runtime.retry import RetryPolicy

ProviderName = str  # openai, anthropic, gemini, offline, or one registered in providers.factory
DEFAULT_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


class ModelTarget(BaseModel):
    name: str
    provider: ProviderName
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int = Field(default=128_000, gt=0)
    max_output_tokens: int = Field(default=2048, gt=0)
    capabilities: list[str] = Field(default_factory=lambda: ["tools"])
    price_input: float = Field(default=0.0, ge=0, description="USD per million uncached input tokens.")
    price_cached_input: float | None = Field(default=None, ge=0, description="Defaults to price_input.")
    price_cache_write: float | None = Field(default=None, ge=0, description="Defaults to price_input.")
    price_output: float = Field(default=0.0, ge=0)
    timeout_seconds: float = Field(default=120.0, gt=0)

    def api_key(self) -> str | None:
        variable = self.api_key_env or DEFAULT_KEY_VARIABLES.get(self.provider)
        return os.environ.get(variable) if variable else None


class RetryOverride(BaseModel):
    """What a route changes of the default policy for model calls (the numbers it names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    base_delay: float | None = Field(default=None, ge=0, le=3600)
    max_delay: float | None = Field(default=None, ge=0, le=86_400)

    def over(self, policy: RetryPolicy) -> RetryPolicy:
        return dataclasses.replace(policy, **self.model_dump(exclude_none=True))


class Route(BaseModel):
    name: str
    targets: list[str] = Field(min_length=1)
    retry: RetryOverride | None = Field(
        default=None, description="How this route's model calls are tried again (default: QUIRE_MODEL_RETRY)."
    )


class ModelsConfig(BaseModel):
    targets: dict[str, ModelTarget]
    routes: dict[str, Route]

    @model_validator(mode="after")
    def _routes_name_known_targets(self) -> ModelsConfig:
        for route in self.routes.values():
            unknown = [t for t in route.targets if t not in self.targets]
            if unknown:
                raise ValueError(f"route {route.name!r} names unknown targets: {', '.join(unknown)}")
        if "default" not in self.routes:
            raise ValueError("a route named 'default' is needed")
        return self

    def route(self, name: str | None) -> Route:
        route = self.routes.get(name or "default")
        if route is None:
            raise ConfigurationError(
                f"no model route named {name!r}; known: {', '.join(sorted(self.routes))}"
            )
        return route


OFFLINE = ModelTarget(name="offline", provider="offline", model="extractive", context_window=32_000)


def offline_config() -> ModelsConfig:
    return ModelsConfig(
        targets={"offline": OFFLINE}, routes={"default": Route(name="default", targets=["offline"])}
    )


def load_models(*, models_file: str = "", model: str = "") -> ModelsConfig:
    """The configured targets and routes (QUIRE_MODELS, else QUIRE_MODEL, else offline)."""
    try:
        if models_file:
            path = Path(models_file)
            if not path.is_file():
                raise ConfigurationError(f"QUIRE_MODELS names {path}, which does not exist")
            raw = tomllib.loads(path.read_text())
            targets = {name: ModelTarget(name=name, **body) for name, body in raw.get("targets", {}).items()}
            targets.setdefault("offline", OFFLINE)
            routes = {name: Route(name=name, **body) for name, body in raw.get("routes", {}).items()}
            return ModelsConfig(targets=targets, routes=routes)
        if model:
            provider, sep, model_name = model.partition(":")
            if not sep or not model_name:
                raise ConfigurationError(
                    "QUIRE_MODEL must look like provider:model, e.g. openai:gpt-4.1-mini"
                )
            target = ModelTarget.model_validate({"name": provider, "provider": provider, "model": model_name})
            return ModelsConfig(
                targets={target.name: target, "offline": OFFLINE},
                routes={"default": Route(name="default", targets=[target.name])},
            )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        variable = f"QUIRE_MODELS ({models_file})" if models_file else "QUIRE_MODEL"
        raise ConfigurationError(f"invalid model configuration in {variable}: {problems}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"QUIRE_MODELS is not valid TOML: {error}") from None
    return offline_config()
