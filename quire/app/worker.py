"""`quire worker`: a supervisor that keeps N worker processes alive, and the worker process.

Dramatiq's own CLI shuts the whole pool down when one child is SIGKILLed; Quire's supervisor
restarts the child instead (with a back-off if it keeps dying), so a killed worker costs one
process start, and the runtime's sweeper resumes what that worker held.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from dramatiq import Worker

from quire.core.broker import build_broker
from quire.core.db import Database, resolve_database_url
from quire.core.settings import Settings

logger = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 30.0
STOP_GRACE_SECONDS = 20.0


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Starts `count` copies of a command and restarts any that exits while running."""

    def __init__(self, command: list[str], count: int, *, name: str = "worker") -> None:
        self.command = command
        self.children = [Child(index=i) for i in range(count)]
        self.name = name
        self.stopping = threading.Event()

    def _start(self, child: Child) -> None:
        # Its own process group: a Ctrl-C reaches the supervisor only, which stops the
        # children with SIGTERM once, instead of interrupting them halfway through start-up.
        child.process = subprocess.Popen(self.command, process_group=0)
        child.started_at = time.monotonic()
        child.pids.append(child.process.pid)
        logger.info("%s %d started (pid %d)", self.name, child.index, child.process.pid)

    def run(self) -> int:
        for child in self.children:
            self._start(child)
        while not self.stopping.is_set():
            for child in self.children:
                process = child.process
                if process is not None and process.poll() is not None:
                    code = process.returncode
                    lived = time.monotonic() - child.started_at
                    child.failures = 0 if lived > 60 else child.failures + 1
                    delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** max(0, child.failures - 1))
                    logger.warning(
                        "%s %d (pid %d) exited with %s after %.0f s; restarting in %.1f s",
                        self.name,
                        child.index,
                        process.pid,
                        code,
                        lived,
                        delay,
                    )
                    child.process = None
                    child.next_start = time.monotonic() + delay
                if child.process is None and time.monotonic() >= child.next_start:
                    self._start(child)
            self.stopping.wait(0.2)
        return self._stop_children()

    def stop(self) -> None:
        self.stopping.set()

    def _stop_children(self) -> int:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s pid %d did not stop in time; killing it", self.name, process.pid)
                process.kill()
                process.wait()
        return 0


def supervise_workers(settings: Settings, processes: int | None = None) -> int:
    command = [sys.executable, "-m", "quire.app.worker"]
    supervisor = Supervisor(command, processes or settings.worker_processes)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return supervisor.run()


def run_worker_process(settings: Settings) -> None:
    """One worker process: Dramatiq's consumer threads plus the runtime's sweeper."""
    from quire.app.programs import start_background_services, worker_queues

    database_url = resolve_database_url(settings)
    broker = build_broker(broker_url=settings.broker_url, database_url=database_url)
    database = Database.from_settings(
        settings, url=database_url, pool_size=settings.worker_threads + 2, max_overflow=4
    )
    database.check_login()
    services = start_background_services(settings=settings, database=database, broker=broker)
    worker = Worker(broker, queues=worker_queues(), worker_threads=settings.worker_threads)
    worker.start()
    logger.info("worker process %d consuming %s", os.getpid(), ", ".join(sorted(worker_queues())))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1):
        pass
    logger.info("worker process %d stopping: handing its runs over", os.getpid())
    # Runs waiting on a model or a remote tool go back to the queue at once, the others at their
    # next step; the consumer threads are then free within moments, and no run is left for the
    # sweeper to recover as if this worker had died.
    services.executor.hand_over()
    worker.stop(timeout=int(STOP_GRACE_SECONDS * 1000) - 2000)
    services.stop()
    broker.close()
    database.dispose()


def die_with_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL, instead of living on."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        sys.exit(0)


def main() -> None:
    from quire.app.logs import configure_logging
    from quire.core.errors import QuireError
    from quire.core.settings import load_settings

    die_with_parent()
    try:
        settings = load_settings()
        configure_logging(settings, process_name="quire-worker")
        run_worker_process(settings)
    except QuireError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
