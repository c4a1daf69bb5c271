"""Running Quire's real processes in a test: free ports, waiting, and `quire up` on a data folder."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

API_KEY = re.compile(r"qk_[A-Za-z0-9_-]{43}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def worker_processes(root: psutil.Process) -> list[psutil.Process]:
    """The live `quire.app.worker` processes under `root` (a supervisor, or `quire up`)."""
    found = []
    for process in root.children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and "quire.app.worker" in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue  # exited meanwhile
    return found


def quire_environment(**settings: str) -> dict[str, str]:
    """This process's environment without its QUIRE_ variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(settings)
    return env


def api_ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Up:
    """A running `quire up`: its process, API address, output and the first admin's key."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def workers(self) -> list[psutil.Process]:
        return worker_processes(psutil.Process(self.process.pid))


@contextmanager
def quire_up(data_dir: Path, *, ready_within: float = 90, **settings: str) -> Iterator[Up]:
    """`quire up` on a fresh `data_dir`, stopped with Ctrl-C (SIGINT to its group) at the end."""
    port = free_port()
    env = quire_environment(QUIRE_DATA_DIR=str(data_dir), QUIRE_API_BIND=f"127.0.0.1:{port}", **settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "up.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "quire.app.cli", "up"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: api_ready(base), ready_within, "/readyz")
        wait_for(lambda: "Quire is up" in log.read_text(), 10, "the banner")
        keys = API_KEY.findall(log.read_text())
        assert len(keys) == 1, log.read_text()
        yield Up(process=process, base=base, log=log, key=keys[0])
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
