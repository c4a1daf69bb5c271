"""No secret in any log: a full run of Quire (upload, ingestion, search, agent answers on a
provider that needs a key, a provider that echoes the key back in its error, a wrong API key)
with DEBUG logging, and then a search of everything every process wrote for the keys it used."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.agent.fakes.openai_server import OpenAIServer, completion_reply, error_reply, function_call
from tests.e2e.processes import quire_up

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-proj-SECRETprovider0123456789abcdefXYZ"
HANDBOOK = "# Handbook\n\n## Holidays\n\nEvery employee gets 27 days of paid holiday a year.\n"


def test_no_api_key_or_provider_key_reaches_any_log(tmp_path: Path) -> None:
    with OpenAIServer() as provider:
        models = tmp_path / "models.toml"
        models.write_text(
            f"""
[targets.hosted]
provider = "openai"
model = "gpt-test"
base_url = "{provider.base_url}"
api_key_env = "TEST_PROVIDER_KEY"

[routes.default]
targets = ["hosted"]
"""
        )
        provider.reply(
            completion_reply(tool_calls=[function_call("c1", "search_content", '{"query": "holiday days"}')]),
            completion_reply("Employees get 27 days of paid holiday [1]."),
            # A provider that refuses the key and quotes it back, as some do in their errors.
            error_reply(401, f"Incorrect API key provided: {PROVIDER_KEY}", type="invalid_api_key"),
        )
        with quire_up(
            tmp_path / "data",
            QUIRE_MODELS=str(models),
            QUIRE_LOG_LEVEL="DEBUG",
            QUIRE_LOG_FORMAT="json",
            TEST_PROVIDER_KEY=PROVIDER_KEY,
        ) as up:
            with httpx.Client(base_url=up.base, headers=up.headers, timeout=90) as admin:
                made = admin.post("/v1/keys", json={"name": "writer", "role": "contributor"})
                assert made.status_code == 201, made.text
                key = made.json()["key"]
            with httpx.Client(
                base_url=up.base, headers={"Authorization": f"Bearer {key}"}, timeout=90
            ) as api:
                uploaded = api.post(
                    "/v1/documents", files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")}
                )
                assert uploaded.status_code == 202, uploaded.text
                document = f"/v1/documents/{uploaded.json()['document_id']}"
                deadline = time.monotonic() + 90
                while api.get(document).json()["versions"][0]["status"] != "indexed":
                    assert time.monotonic() < deadline, api.get(document).text
                    time.sleep(0.3)
                assert api.get("/v1/search", params={"q": "holiday"}).json()["hits"]

                answered = api.post("/v1/agent/ask", json={"question": "How many holiday days?"}).json()
                assert answered["status"] == "completed" and "27 days" in answered["answer"], answered
                refused = api.post("/v1/agent/ask", json={"question": "And sick days?"}).json()
                assert refused["answer"] is None and "auth" in str(refused).lower(), refused
                assert PROVIDER_KEY not in str(refused)  # nor in what the API tells the caller

                wrong = f"{key[:-6]}AAAAAA"
                assert api.get("/v1/me", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
            time.sleep(1)  # let the workers' last lines reach the log

        # The provider really was called with the key, so its absence from the logs means something.
        assert {r.headers.get("authorization") for r in provider.received} == {f"Bearer {PROVIDER_KEY}"}

    logs = {path: path.read_text(errors="replace") for path in (tmp_path / "data").rglob("*.log")}
    everything = "\n".join(logs.values())
    assert '"level": "DEBUG"' in everything and "run_id" in everything  # the logs are really there
    # The operator learns of the refused key, masked.
    assert "model target hosted: auth: " in everything
    assert "Incorrect API key provided: sk-pr…[redacted]" in everything
    for secret in (key, wrong, PROVIDER_KEY, PROVIDER_KEY[8:24]):
        leaks = [str(path) for path, text in logs.items() if secret in text]
        assert not leaks, f"{secret[:10]}… found in {leaks}"
    # The first admin key is printed once, on purpose, in `quire up`'s banner, and nowhere else.
    assert everything.count(up.key) == 1
