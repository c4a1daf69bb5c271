"""`quire up` on a fresh data folder: ready, usable, self-healing, and stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from quire.core.embedded import EmbeddedPostgres

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def worker_processes(root: psutil.Process) -> list[psutil.Process]:
    found = []
    for process in root.children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and "quire.app.worker" in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue  # exited meanwhile
    return found


def test_up_runs_everything_restarts_a_killed_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(QUIRE_DATA_DIR=str(tmp_path), QUIRE_API_BIND=f"127.0.0.1:{port}")
    log = tmp_path / "up.log"
    with log.open("w") as output:
        up = subprocess.Popen(
            [sys.executable, "-m", "quire.app.cli", "up"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "/readyz")
        assert time.monotonic() - started < 60
        wait_for(lambda: "Quire is up" in log.read_text(), 10, "the banner")
        keys = re.findall(r"qk_[A-Za-z0-9_-]{43}", log.read_text())
        assert len(keys) == 1
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {keys[0]}"}).json()
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
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        reviewer = re.findall(r"qk_[A-Za-z0-9_-]{43}", made.stdout)[0]
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {reviewer}"}).json()
        assert (me["name"], me["role"]) == ("rita", "reviewer")

        root = psutil.Process(up.pid)
        wait_for(lambda: len(worker_processes(root)) == 1, 20, "a worker process")
        victim = worker_processes(root)[0]
        victim.send_signal(signal.SIGKILL)
        wait_for(
            lambda: [p.pid for p in worker_processes(root)] not in ([], [victim.pid]),
            20,
            "the supervisor to restart the worker",
        )
        assert ready()
    finally:
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()
    assert not EmbeddedPostgres(tmp_path).status().running
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/healthz", timeout=1)
    assert "Traceback" not in log.read_text()
