"""`quire ask` on the local database: start an agent run, follow its events, read its answer.

With a worker running, the workers answer and this follows the run's events; without one, it
runs the loop in its own process (the same durable program, driven locally).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console

from quire.agent.service import AgentRunCreate, describe_agent_run, start_agent_run
from quire.app.ask_output import follow
from quire.app.programs import command_kicker
from quire.app.services import build_services
from quire.client.models import AgentRun, RunEvent
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import Caller, get_tenant_by_name
from quire.runtime.events import events_after
from quire.runtime.executor import Executor
from quire.runtime.local import LocalKicker, drive
from quire.runtime.models import TERMINAL
from quire.runtime.service import get_run
from quire.runtime.sweeper import Sweeper


class LocalAsker:
    """Runs on the tenant's database, as an anonymous contributor named "cli"."""

    def __init__(self, settings: Settings, tenant: str) -> None:
        self.database = Database.from_settings(settings, pool_size=4)
        self.services = build_services(settings, self.database)
        with self.database.system_session() as system:
            self.tenant_id = get_tenant_by_name(session=system, name=tenant).id
        self.kicker, local = command_kicker(settings, self.database)
        self.note = " (in this process: no worker is running)" if local else ""
        self.executor = (
            Executor(self.database, self.kicker, programs=self.services.programs, services=self.services)
            if local
            else None
        )
        self.sweeper = Sweeper(self.database, self.kicker, interval=0.2) if local else None

    def __enter__(self) -> LocalAsker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.services.content.close()
        self.database.dispose()

    def start(self, question: str, *, collections: tuple[str, ...], route: str | None) -> str:
        caller = Caller(
            principal_id=uuid.uuid4(), tenant_id=self.tenant_id, name="cli", role=Role.contributor
        )
        with self.database.tenant_session(self.tenant_id) as session:
            run_id, _ = start_agent_run(
                session,
                caller=caller,
                kicker=self.kicker,
                request=AgentRunCreate(
                    question=question, collections=list(collections), route=route, stream=True
                ),
                agent=self.services.agent,
            )
            session.commit()
        return str(run_id)

    def events(self, run_id: str) -> Iterator[RunEvent]:
        after = 0
        while True:
            if self.executor is not None and isinstance(self.kicker, LocalKicker):
                drive(self.executor, self.kicker, sweeper=self.sweeper, until=0.3)
            else:
                time.sleep(0.3)
            with self.database.tenant_session(self.tenant_id) as session:
                rows = events_after(session, run_id=uuid.UUID(run_id), after_id=after, limit=10_000)
                ended = get_run(session, run_id=uuid.UUID(run_id)).status in TERMINAL
            for row in rows:
                after = row.id or after
                yield RunEvent(id=after, type=row.type, data=row.data, created_at=row.created_at)
            if ended and not rows:
                return

    def result(self, run_id: str) -> AgentRun:
        with self.database.tenant_session(self.tenant_id) as session:
            described = describe_agent_run(session, run_id=uuid.UUID(run_id))
        return AgentRun.model_validate(described.model_dump(mode="json"))


def ask(
    settings: Settings,
    question: str,
    *,
    collections: list[str],
    route: str | None,
    tenant: str,
    console: Console,
) -> bool:
    """Answer `question`, showing the run on `console`; returns whether an answer came."""
    with LocalAsker(settings, tenant) as asker:
        run = follow(asker, question, collections=tuple(collections), route=route, console=console)
    return bool(run.answer)
