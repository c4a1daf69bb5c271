"""`quire up` on a fresh data folder: ready, usable, self-healing, and stopped by Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from quire.core.embedded import EmbeddedPostgres
from tests.agent.test_mcp_server import documented_block, text_of
from tests.e2e.processes import API_KEY, api_ready, free_port, quire_environment, quire_up, wait_for

pytestmark = pytest.mark.e2e


def test_up_runs_everything_restarts_a_killed_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with quire_up(tmp_path, ready_within=60) as up:
        me = httpx.get(f"{up.base}/v1/me", headers=up.headers).json()
        assert me["role"] == "admin"

        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "quire.app.cli",
                "keys",
                "create",
                "--role",
                "reviewer",
                "--name",
                "rita",
            ],
            env=quire_environment(QUIRE_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        reviewer = API_KEY.findall(made.stdout)[0]
        me = httpx.get(f"{up.base}/v1/me", headers={"Authorization": f"Bearer {reviewer}"}).json()
        assert (me["name"], me["role"]) == ("rita", "reviewer")

        wait_for(lambda: len(up.workers()) == 1, 20, "a worker process")
        victim = up.workers()[0]
        victim.send_signal(signal.SIGKILL)
        wait_for(
            lambda: [p.pid for p in up.workers()] not in ([], [victim.pid]),
            20,
            "the supervisor to restart the worker",
        )
        assert api_ready(up.base)

        # The restarted worker ingests an upload, then serves the background queue too: the
        # memory program every indexed version starts runs there.
        uploaded = httpx.post(
            f"{up.base}/v1/documents",
            headers=up.headers,
            files={"file": ("policy.md", b"# Travel\n\nTrains are booked through the travel portal.\n")},
        )
        assert uploaded.status_code == 202, uploaded.text

        def memory_run_finished() -> bool:
            found = httpx.get(
                f"{up.base}/v1/runs", headers=up.headers, params={"program": "memory.on-version"}
            )
            return [run["status"] for run in found.json()["data"]] == ["completed"]

        wait_for(memory_run_finished, 120, "the background memory run to finish")

        # Claude Desktop's block for the embedded database, as docs/mcp.md gives it, finds the
        # document through `quire mcp` with nothing but the key (and this test's data folder).
        server = json.loads(documented_block("## Claude Desktop", "json"))["mcpServers"]["quire"]
        assert set(server["env"]) == {"QUIRE_API_KEY"}
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "quire.app.cli", *server["args"]],
            env={"QUIRE_API_KEY": up.key, "QUIRE_DATA_DIR": str(tmp_path)},
            cwd=str(Path(__file__).parents[2]),
        )

        async def search() -> str:
            async with Client(params, read_timeout_seconds=120) as client:
                return text_of(await client.call_tool("search", {"query": "how are trains booked"}))

        assert "Trains are booked through the travel portal." in anyio.run(search)
    assert up.process.returncode == 0, up.log.read_text()
    assert not EmbeddedPostgres(tmp_path).status().running
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{up.base}/healthz", timeout=1)
    assert "Traceback" not in up.log.read_text()


def test_up_that_cannot_reach_its_broker_stops_the_database_it_started(tmp_path: Path) -> None:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "quire.app.cli", "up"],
            env=quire_environment(
                QUIRE_DATA_DIR=str(tmp_path),
                QUIRE_BROKER_URL="redis://127.0.0.1:1/0",
                QUIRE_API_BIND=f"127.0.0.1:{free_port()}",
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert "cannot reach the broker at redis://127.0.0.1:1/0" in errors[0]
        assert "QUIRE_BROKER_URL" in errors[0]
        assert "Traceback" not in result.stderr + result.stdout
        assert (tmp_path / "postgres").exists()  # it did start one
        assert not EmbeddedPostgres(tmp_path).status().running
    finally:
        EmbeddedPostgres(tmp_path).stop()  # whatever the outcome, no server outlives the test
