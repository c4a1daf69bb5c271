"""A worker imports the SDKs of the configured model providers when it starts, not on its first
model call (issue 18, finding 10), and only those. Each case is a fresh Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.agent.fakes.anthropic_server import AnthropicServer, message_reply, text
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply

ROOT = Path(__file__).resolve().parents[2]

# What `start_background_services` builds before the worker takes work; then one call per route.
CHILD = """
import json, sys
from quire.agent.messages import CompletionRequest, Message
from quire.app.services import build_services
from quire.core.settings import Settings

services = build_services(Settings(models=sys.argv[1], data_dir=sys.argv[2]), None, warm_models=True)
sdks = ("openai", "anthropic", "google.genai")
started = {sdk: sdk in sys.modules for sdk in sdks}
calls = {}
for route in sys.argv[3].split(",") if sys.argv[3] else []:
    before = set(sys.modules)
    call = services.agent.router.complete(
        route, lambda t: CompletionRequest(model=t.model, messages=[Message.user("hi")], max_output_tokens=8)
    )
    assert call.completion.message.content == "ok", call
    calls[route] = sorted(set(sys.modules) - before)
print(json.dumps({"started": started, "calls": calls}))
"""


def start_worker_services(tmp_path: Path, models: str, routes: list[str]) -> dict[str, Any]:
    path = tmp_path / "models.toml"
    path.write_text(models)
    models_setting = str(path) if models else ""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, models_setting, str(tmp_path / "data"), ",".join(routes)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "STARTUP_TEST_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def target(name: str, provider: str, url: str) -> str:
    return (
        f'[targets.{name}]\nprovider = "{provider}"\nmodel = "m"\nbase_url = "{url}"\n'
        f'api_key_env = "STARTUP_TEST_KEY"\n[routes.{name}]\ntargets = ["{name}"]\n'
    )


def test_the_first_model_call_of_a_started_worker_imports_no_sdk_module(tmp_path: Path) -> None:
    with OpenAIServer() as openai, AnthropicServer() as anthropic:
        openai.reply(completion_reply("ok"))
        anthropic.reply(message_reply(text("ok")))
        models = (
            target("gpt", "openai", openai.base_url)
            + target("claude", "anthropic", anthropic.url)
            + '[routes.default]\ntargets = ["gpt"]\n'
        )
        started = start_worker_services(tmp_path, models, ["gpt", "claude"])
    for route, imported in started["calls"].items():
        sdk_modules = [m for m in imported if m.split(".")[0] in ("openai", "anthropic", "google")]
        assert sdk_modules == [], (route, sdk_modules)
    assert started["started"] == {"openai": True, "anthropic": True, "google.genai": False}


def test_a_worker_loads_no_sdk_it_is_not_configured_for(tmp_path: Path) -> None:
    offline = start_worker_services(tmp_path, "", [])  # no targets: the offline provider alone
    assert offline["started"] == {"openai": False, "anthropic": False, "google.genai": False}
