"""No test reaches a paid provider: the guard from tests/provider_guard.py, proven offline."""

from __future__ import annotations

import socket

import pytest

from quire.agent.messages import CompletionRequest, Message
from quire.agent.providers.anthropic import AnthropicProvider
from quire.agent.providers.base import Provider
from quire.agent.providers.gemini import GeminiProvider
from quire.agent.providers.openai import OpenAIProvider
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply
from tests.provider_guard import RealProviderBlocked, block_real_providers, is_real_provider

REQUEST = CompletionRequest(model="any", messages=[Message.user("Hello")])


@pytest.mark.parametrize(
    "provider",
    [
        OpenAIProvider(api_key="sk-real-looking"),
        AnthropicProvider(api_key="sk-ant-real-looking"),
        GeminiProvider(api_key="AIza-real-looking"),
        OpenAIProvider(api_key="sk-or-x", base_url="https://openrouter.ai/api/v1"),
        OpenAIProvider(api_key="x", base_url="https://my-team.openai.azure.com/openai/v1"),
    ],
    ids=repr,
)
def test_adapters_cannot_reach_real_providers(provider: Provider) -> None:
    with pytest.raises(RealProviderBlocked, match="real model provider"):
        provider.complete(REQUEST)


@pytest.mark.parametrize(
    "host",
    [
        "api.openai.com",
        "API.OpenAI.com.",
        "my-resource.openai.azure.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "aiplatform.googleapis.com",
        "us-central1-aiplatform.googleapis.com",
        "openrouter.ai",
        "api.mistral.ai",
        "api.groq.com",
        "api.together.xyz",
        "api.deepseek.com",
    ],
)
def test_real_provider_hosts_are_refused(host: str) -> None:
    assert is_real_provider(host)
    with pytest.raises(RealProviderBlocked):
        socket.getaddrinfo(host, 443)
    with pytest.raises(RealProviderBlocked):
        socket.create_connection((host, 443), timeout=1)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "pypi.org", "notopenai.com"])
def test_other_hosts_are_not_providers(host: str) -> None:
    assert not is_real_provider(host)


def test_localhost_still_works() -> None:
    block_real_providers()  # idempotent
    with OpenAIServer() as server:
        server.reply(completion_reply("local"))
        provider = OpenAIProvider(api_key=None, base_url=server.base_url, timeout=5)
        assert provider.complete(REQUEST).message.content == "local"
    assert socket.getaddrinfo("localhost", 80)
