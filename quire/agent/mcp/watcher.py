"""The worker's side of imported tools: connections kept open to every enabled MCP server (so
their change notices arrive), and a periodic re-sync of each, for servers that never send one."""

from __future__ import annotations

import logging
import threading

from sqlmodel import select

from quire.agent.mcp.access import McpAccess
from quire.agent.mcp.endpoints import describe_error
from quire.agent.mcp.hub import McpHub, get_hub
from quire.agent.mcp.models import McpServer
from quire.agent.mcp.service import sync_server
from quire.content.environment import ContentEnvironment
from quire.core.db import Database

logger = logging.getLogger(__name__)


class McpWatcher:
    """Syncs every enabled MCP server of every tenant now and then every `interval` seconds."""

    def __init__(
        self,
        database: Database,
        *,
        access: McpAccess,
        content: ContentEnvironment,
        interval: float = 300.0,
        hub: McpHub | None = None,
    ) -> None:
        self.database = database
        self.access = access
        self.content = content
        self.interval = interval
        self.hub = hub
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quire-mcp-watcher", daemon=True)

    def start(self) -> McpWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_once(self) -> int:
        """Sync each enabled server; close connections to servers gone or disabled. Returns the count."""
        hub = self.hub or get_hub()
        with self.database.system_session() as system:  # every tenant's servers: bookkeeping only
            servers = [(s.tenant_id, s.name) for s in system.exec(select(McpServer).where(McpServer.enabled))]
        for key in set(hub.connected()) - set(servers):
            hub.close(key)
        synced = 0
        for tenant_id, name in servers:
            if self._stop.is_set():
                break
            with self.database.tenant_session(tenant_id) as session:
                server = session.exec(select(McpServer).where(McpServer.name == name)).first()
                if server is None or not server.enabled:
                    continue
                try:
                    sync_server(
                        session,
                        server=server,
                        embedder=self.content.embedder,
                        hub=hub,
                        access=self.access,
                        keep_open=True,
                    )
                    session.commit()
                    synced += 1
                except Exception as error:
                    session.rollback()
                    logger.warning("syncing MCP server %s failed: %s", name, describe_error(error))
        return synced

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("the MCP watcher's pass failed; it tries again later")
            self._stop.wait(self.interval)


def start_mcp_watcher(
    database: Database, *, access: McpAccess, content: ContentEnvironment, interval: float = 300.0
) -> McpWatcher:
    """Start the watcher thread of a worker process; `stop()` it when the process stops."""
    return McpWatcher(database, access=access, content=content, interval=interval).start()
