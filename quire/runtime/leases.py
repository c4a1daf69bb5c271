"""Leases with a fencing epoch: one worker at a time moves a run, and a worker that lost its
lease cannot write.

A worker claims a run with a single UPDATE that bumps the run's epoch; every later write of
that worker names the epoch it claimed, so once another worker has claimed the run (after the
lease expired), the first worker's writes match no row and it stops. While a worker holds runs,
a keeper thread extends their leases; a worker that dies stops extending them, and the sweeper
hands the runs to another worker when they expire.

A busy worker must never look dead, so nothing a step does may keep the keeper from renewing:

- every lease is set from the database's clock at the moment of the write (`clock_timestamp()`),
  never from `now()`, the start of a transaction that may have lasted longer than the lease;
- the keeper renews over a connection of its own, not the pool the worker's threads (and the
  steps of `ctx.parallel`) may have emptied, with a statement timeout, so that a lock held on
  one run's row cannot hold it up past the leases' expiry;
- a renewal is one statement in autocommit on a connection that stays in the system context:
  one round trip and a few lines of Python. The keeper competes for the GIL with every busy
  thread, and gets it for a switch interval (5 ms) in turn, for each line and after each wait
  on the network: a renewal through a pooled ORM session (checkout, ping, begin, context,
  update, commit) took 0.3 to 0.9 s with eight threads computing on two cores;
- it renews every third of the lease, so two thirds of it (4 s of the default 6 s) are left
  for a renewal to come late, and after a failed renewal it tries again within half a second.

The one thing the keeper cannot outrun is a single C call that holds the GIL for seconds: it
starves every thread of the process. Such work belongs in a child process, as parsing is
(`quire.content.parsing`). A renewal that comes later than half the lease is logged, so a
starved worker shows before it loses a lease.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import text

from quire.core.db import Database

logger = logging.getLogger(__name__)

CLAIM_SQL = text(
    """
    UPDATE runtime_run SET
        epoch = epoch + 1,
        status = 'running',
        lease_owner = :owner,
        lease_expires_at = clock_timestamp() + make_interval(secs => :ttl),
        kicked_at = NULL,
        updated_at = now()
    WHERE id = :run_id AND epoch = :epoch
      AND (
            status = 'queued'
         OR (status IN ('waiting', 'sleeping', 'throttled') AND wake_at <= now())
         OR (status = 'running' AND lease_expires_at < now())
         OR (cancel_requested AND status NOT IN ('completed', 'failed', 'cancelled'))
      )
    RETURNING id, tenant_id, program, program_version, input, state, epoch, next_seq, attempt,
              recoveries, cancel_requested, waiting_for, parent_id, created_at, trace_parent,
              started_by, started_role, worked_seconds, cancel_reason
    """
)

HISTORY_SQL = text(
    "SELECT seq, name, kind, status, result, error, error_code FROM runtime_step "
    "WHERE run_id = :run_id ORDER BY seq"
)

# In psycopg's own parameter style: the keeper runs it on a bare connection of its own.
HEARTBEAT_SQL = """
    UPDATE runtime_run AS r SET lease_expires_at = clock_timestamp() + make_interval(secs => %(ttl)s)
    FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(epochs)s AS bigint[])) AS held(id, epoch)
    WHERE r.id = held.id AND r.epoch = held.epoch AND r.status = 'running'
    RETURNING r.id
"""


@dataclass(frozen=True)
class ClaimedRun:
    id: uuid.UUID
    tenant_id: uuid.UUID
    program: str
    program_version: int
    input: dict[str, Any]
    state: dict[str, Any] | None
    epoch: int
    next_seq: int
    attempt: int
    recoveries: int
    cancel_requested: bool
    waiting_for: dict[str, Any] | None
    parent_id: uuid.UUID | None
    created_at: datetime
    trace_parent: str | None
    started_by: uuid.UUID | None = None
    started_role: str | None = None
    worked_seconds: float = 0.0
    cancel_reason: str | None = None


@dataclass(frozen=True)
class RecordedStep:
    seq: int
    name: str
    kind: str
    status: str
    result: Any
    error: str | None
    error_code: str | None = None


def claim(
    database: Database, *, run_id: uuid.UUID, epoch: int, owner: str, ttl: float
) -> tuple[ClaimedRun, list[RecordedStep]] | None:
    """Take the run if the kick is current and the run is free to move; None otherwise."""
    with database.system_session() as session:
        row = session.execute(
            CLAIM_SQL, {"run_id": run_id, "epoch": epoch, "owner": owner, "ttl": ttl}
        ).first()
        if row is None:
            session.rollback()
            return None
        history = [RecordedStep(*r) for r in session.execute(HISTORY_SQL, {"run_id": run_id})]
        session.commit()
    return ClaimedRun(*row), history


RETRY_SECONDS = 0.5  # after a failed renewal; the leases are still running out
MIN_STATEMENT_TIMEOUT = 1.0  # a renewal may take this long even when leases are short (tests)


class LeaseKeeper:
    """A thread that extends the leases of the runs this process holds."""

    def __init__(self, database: Database, *, owner: str, ttl: float) -> None:
        self.database = database
        self.owner = owner
        self.ttl = ttl
        self.interval = ttl / 3
        self.held: dict[uuid.UUID, int] = {}
        self.lost: set[tuple[uuid.UUID, int]] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="quire-lease-keeper", daemon=True)
        # The connection renewals go over, made on first use; one renewal at a time uses it (the
        # keeper's, or a step's `ctx.heartbeat()`).
        self._connection: psycopg.Connection[Any] | None = None
        self._renewing = threading.Lock()
        self.renewed_at = time.monotonic()
        self.longest_gap = 0.0  # seconds between two renewals, the longest so far

    def start(self) -> None:
        self.renewed_at = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=self.ttl)
        with self._renewing:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def hold(self, run_id: uuid.UUID, epoch: int) -> None:
        with self.lock:
            self.held[run_id] = epoch

    def release(self, run_id: uuid.UUID, epoch: int) -> None:
        """Stop extending the lease of `run_id` claimed at `epoch`. Only that claim's: another
        thread of this process may have claimed the run since (after the sweeper took it from
        this one), and its lease must go on being extended."""
        with self.lock:
            if self.held.get(run_id) == epoch:
                del self.held[run_id]
            self.lost.discard((run_id, epoch))

    def is_lost(self, run_id: uuid.UUID, epoch: int) -> bool:
        with self.lock:
            return (run_id, epoch) in self.lost

    def extend(self) -> None:
        with self.lock:
            held = dict(self.held)
        if not held:
            return
        parameters = {"ids": list(held), "epochs": list(held.values()), "ttl": self.ttl}
        with self._renewing:
            kept = {row[0] for row in self._renew(parameters)}
        with self.lock:
            for run_id, epoch in held.items():
                if run_id not in kept and self.held.get(run_id) == epoch:
                    # Not yet a loss worth a warning: a run that its thread parked or finished a
                    # moment ago (before it let go of the lease) matches no row either. The
                    # executor warns when the thread finds the run gone (`LeaseLost`).
                    logger.debug("the lease on run %s (epoch %s) is no longer ours", run_id, epoch)
                    self.lost.add((run_id, epoch))

    def _renew(self, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self.database.bind is not self.database.engine:  # a test's shared transaction
            with self.database.system_session() as session:
                rows = session.connection().exec_driver_sql(HEARTBEAT_SQL, parameters).all()
                session.commit()
            return [tuple(row) for row in rows]
        connection = self._connect()
        try:
            return connection.execute(HEARTBEAT_SQL, parameters).fetchall()
        except psycopg.Error:
            connection.close()  # a new one next time: this one may be broken
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            timeout = max(self.interval, MIN_STATEMENT_TIMEOUT)
            self._connection = self.database.system_connection(statement_timeout=timeout)
        return self._connection

    def _run(self) -> None:
        # Connect now, while the worker is idle, not at the first renewal under load.
        if self.database.bind is self.database.engine:
            try:
                with self._renewing:
                    self._connect()
            except Exception:
                logger.warning("could not connect to renew leases; will try again", exc_info=True)
        wait = self.interval
        while not self.stopping.wait(wait):
            try:
                self.extend()
            except Exception:
                logger.warning("could not extend leases; trying again", exc_info=True)
                wait = min(self.interval, RETRY_SECONDS)
                continue
            wait = self.interval
            now = time.monotonic()
            gap, self.renewed_at = now - self.renewed_at, now
            self.longest_gap = max(self.longest_gap, gap)
            if gap > self.ttl / 2:
                logger.warning(
                    "renewed leases %.1f s after the last renewal (due every %.1f s; a lease "
                    "lasts %.1f s): this worker process is starved",
                    gap,
                    self.interval,
                    self.ttl,
                )
