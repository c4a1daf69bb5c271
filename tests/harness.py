"""A committed database with an in-process executor: for tests of anything that runs as a program.

Workers see only committed rows, so these tests commit, in a database of their own, under a
tenant of their own that is deleted (with everything it owns) after each test.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text

from quire.app.services import Services
from quire.content.environment import ContentEnvironment
from quire.core.blobs import FileBlobStore
from quire.core.db import Database
from quire.core.models import Tenant
from quire.runtime.executor import Executor
from quire.runtime.local import LocalKicker, drive
from quire.runtime.models import RunPublic
from quire.runtime.service import create_run, describe_run, send_signal
from quire.runtime.sweeper import Sweeper
from tests.factories import open_database
from tests.services import make_services


@dataclass
class Harness:
    database: Database
    tenant_id: uuid.UUID
    kicker: LocalKicker
    executor: Executor
    sweeper: Sweeper
    services: Services

    def start(self, program: str, state: BaseModel, **kwargs: Any) -> uuid.UUID:
        with self.database.tenant_session(self.tenant_id) as session:
            run, _ = create_run(session, program=program, state=state, kicker=self.kicker, **kwargs)
            session.commit()
        return run.id

    def drive(self, until: float = 0.0) -> int:
        return drive(self.executor, self.kicker, sweeper=self.sweeper, until=until)

    def drive_until(
        self,
        run_id: uuid.UUID,
        *statuses: str,
        cap: float = 20.0,
        tolerate: tuple[type[BaseException], ...] = (),
    ) -> RunPublic:
        """Drive in short sweeps until the run reaches one of `statuses`, and return it.

        Unlike `drive(until=N)`, which always sweeps for N seconds, this costs only as long as the
        run takes, and a slow machine gets up to `cap` seconds before the test fails. Exceptions
        of the `tolerate` types (a simulated worker crash) end a sweep, not the wait."""
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline:
            try:
                self.drive(until=0.2)
            except tolerate:
                continue
            run = self.run(run_id)
            if run.status in statuses:
                return run
            if run.status.terminal:
                break  # it will not change any more
        run = self.run(run_id)
        raise AssertionError(f"run is {run.status}, not {' or '.join(statuses)}: {run}")

    def run(self, run_id: uuid.UUID) -> RunPublic:
        with self.database.tenant_session(self.tenant_id) as session:
            return describe_run(session, run_id=run_id)

    def signal(self, run_id: uuid.UUID, name: str, payload: Any = None, key: str | None = None) -> bool:
        with self.database.tenant_session(self.tenant_id) as session:
            delivered = send_signal(
                session, run_id=run_id, name=name, payload=payload, key=key, kicker=self.kicker
            )
            session.commit()
        return delivered

    def events(self, run_id: uuid.UUID) -> list[str]:
        with self.database.tenant_session(self.tenant_id) as session:
            rows = session.execute(
                text("SELECT type FROM runtime_event WHERE run_id = :id ORDER BY id"),
                {"id": run_id},
            )
            return [row[0] for row in rows]


@contextmanager
def make_harness(url: str, content: ContentEnvironment | None = None) -> Iterator[Harness]:
    """A harness on the database at `url`; its programs use `content` (default: one with a blob
    folder of its own and no parser: runtime tests parse nothing)."""
    database = open_database(url)
    if content is None:
        content = ContentEnvironment(
            blobs=FileBlobStore(Path(tempfile.mkdtemp(prefix="quire-harness-"))),
            embedding_model="all-MiniLM-L6-v2",
        )
    services = make_services(content, database)
    with database.system_session() as session:
        tenant = Tenant(name=f"runtime-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    kicker = LocalKicker()
    executor = Executor(database, kicker, lease_ttl=1.0, programs=services.programs, services=services)
    sweeper = Sweeper(database, kicker, interval=0.1, redeliver_after=30, max_recoveries=3)
    try:
        yield Harness(database, tenant.id, kicker, executor, sweeper, services)
    finally:
        executor.stop()
        _delete_tenant(database, tenant.id)
        database.dispose()


def _delete_tenant(database: Database, tenant_id: uuid.UUID) -> None:
    with database.system_session() as session:
        session.execute(text("DELETE FROM core_tenant WHERE id = :id"), {"id": tenant_id})
        # The model targets' breakers and cool-downs belong to the installation, not the tenant:
        # a wait one test's target asked for must not hold up the next test's target of that name.
        session.execute(text("DELETE FROM agent_circuit"))
        session.commit()
