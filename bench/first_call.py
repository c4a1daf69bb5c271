"""The first model call of a fresh worker process, per provider, against local fake servers.

    .venv/bin/python -m bench.first_call [--runs 5] [--load 0]

Each run is a new Python process that builds its services the way a worker does
(`build_services(..., warm_models=True)`, as `start_background_services` does) and then
makes one model call to each configured provider (OpenAI, Anthropic, Gemini), then a second
one. Prints the medians: the start-up, each first call and each second call. `--load N` runs N
busy processes beside it (the "under load" case of a 2-core machine). No request leaves the
machine: the providers are the fakes in tests/agent/fakes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.agent.fakes.anthropic_server import AnthropicServer, message_reply, text  # noqa: E402
from tests.agent.fakes.gemini_server import GeminiServer, response_reply  # noqa: E402
from tests.agent.fakes.gemini_server import text as gemini_text  # noqa: E402
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply  # noqa: E402

PROVIDERS = ("openai", "anthropic", "gemini")

CHILD = """
import inspect, json, sys, time
started = time.perf_counter()
from quire.agent.messages import CompletionRequest, Message
from quire.app.services import build_services
from quire.core.settings import Settings

settings = Settings(models=sys.argv[1], data_dir=sys.argv[2])
# What a worker builds before it takes work (warm_models: since issue 18; older code has none).
warm = {"warm_models": True} if "warm_models" in inspect.signature(build_services).parameters else {}
services = build_services(settings, None, **warm)
figures = {"startup": time.perf_counter() - started}
for round in ("first", "second"):
    for name in sys.argv[3].split(","):
        began = time.perf_counter()
        call = services.agent.router.complete(
            name,
            lambda target: CompletionRequest(
                model=target.model, messages=[Message.user("hi")], max_output_tokens=16
            ),
        )
        assert call.completion.message.content, call
        figures[f"{round}:{name}"] = time.perf_counter() - began
print(json.dumps(figures))
"""


def burn(stop: float) -> None:
    while time.monotonic() < stop:
        sum(i * i for i in range(10_000))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the worker")
    options = parser.parse_args()
    runs: list[dict[str, float]] = []
    with OpenAIServer() as openai, AnthropicServer() as anthropic, GeminiServer() as gemini:
        models = Path(tempfile.mkdtemp(prefix="quire-bench-")) / "models.toml"
        models.write_text(
            f"""
[targets.openai]
provider = "openai"
model = "gpt-test"
base_url = "{openai.base_url}"
api_key_env = "BENCH_KEY"
[targets.anthropic]
provider = "anthropic"
model = "claude-test"
base_url = "{anthropic.url}"
api_key_env = "BENCH_KEY"
[targets.gemini]
provider = "gemini"
model = "gemini-test"
base_url = "{gemini.url}"
api_key_env = "BENCH_KEY"
[routes.default]
targets = ["openai"]
[routes.openai]
targets = ["openai"]
[routes.anthropic]
targets = ["anthropic"]
[routes.gemini]
targets = ["gemini"]
"""
        )
        environment = {**os.environ, "BENCH_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
        for _ in range(options.runs):
            for _ in range(2):
                openai.reply(completion_reply("ok"))
                anthropic.reply(message_reply(text("ok")))
                gemini.reply(response_reply(gemini_text("ok")))
            load = [
                multiprocessing.Process(target=burn, args=(time.monotonic() + 60,))
                for _ in range(options.load)
            ]
            for process in load:
                process.start()
            try:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(models),
                        tempfile.mkdtemp(prefix="quire-bench-"),
                        ",".join(PROVIDERS),
                    ],
                    env=environment,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            finally:
                for process in load:
                    process.terminate()
                    process.join()
            runs.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{options.runs} fresh processes, {options.load} busy processes beside; median seconds:")
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(f"  {key:<18} {statistics.median(values):7.3f}  (min {min(values):.3f}, max {max(values):.3f})")


if __name__ == "__main__":
    main()
