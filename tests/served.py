"""Quire's API on a real port over a harness's committed database, with the harness's runs driven
on a thread as a worker would drive them: for clients that speak HTTP themselves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from quire.app.api import create_app
from quire.core.settings import Settings
from tests.harness import Harness
from tests.local_servers import free_port


@contextmanager
def served_api(harness: Harness, settings: Settings, *, max_upload_mb: float = 3.0) -> Iterator[str]:
    """Yields the API's base URL. The driver stands in for `quire worker`."""
    app = create_app(
        settings=settings.model_copy(update={"max_upload_mb": max_upload_mb}),
        database=harness.database,
        services=harness.services,
    )
    app.state.kicker = harness.kicker
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    serving = threading.Thread(target=server.run, name="served-api", daemon=True)
    serving.start()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            harness.drive(until=0.2)
            time.sleep(0.05)

    driver = threading.Thread(target=work, name="served-worker", daemon=True)
    deadline = time.monotonic() + 30
    while not server.started:
        assert serving.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    driver.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        driver.join(30)
        server.should_exit = True
        serving.join(15)
