"""Runs, their recorded steps, signals, human tasks and the append-only event log."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Column, Identity, Index, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from quire.core.models import Role, TenantScoped, enum_column, timestamp_column, utcnow
from quire.core.pages import ListPage


@dataclass(frozen=True)
class Owner:
    """Who started a run, and the role they started it with: a program acts for them."""

    principal_id: uuid.UUID
    role: Role


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    waiting = "waiting"  # for a signal or a human
    sleeping = "sleeping"  # for a timer, or a retry's back-off
    throttled = "throttled"  # for a provider's Retry-After
    blocked = "blocked"  # its program no longer matches its history: a person must act (retry)
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.completed, RunStatus.failed, RunStatus.cancelled})
PARKED = frozenset({RunStatus.waiting, RunStatus.sleeping, RunStatus.throttled})


class StepKind(enum.StrEnum):
    step = "step"
    sleep = "sleep"
    signal = "signal"
    task = "task"
    patch = "patch"
    child = "child"


class Run(TenantScoped, table=True):
    __tablename__ = "runtime_run"
    __table_args__ = (
        # A key belongs to one program: the same key may start a run of each.
        UniqueConstraint("tenant_id", "program", "idempotency_key", name="uq_runtime_run_idempotency"),
        Index(
            "ix_runtime_run_due",
            "wake_at",
            postgresql_where="status IN ('queued','waiting','sleeping','throttled')",
        ),
        Index("ix_runtime_run_leased", "lease_expires_at", postgresql_where="status = 'running'"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    program: str = Field(max_length=200, index=True)
    program_version: int
    input: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    status: RunStatus = Field(default=RunStatus.queued, sa_column=enum_column(RunStatus, index=True))
    wake_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    kicked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    epoch: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    next_seq: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    attempt: int = Field(default=0, description="Failed attempts of the step at next_seq.")
    recoveries: int = Field(default=0, description="Workers lost since the last completed step.")
    cancel_requested: bool = False
    waiting_for: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Why it failed (or is blocked), as a stable code: see docs/runtime.md's table of end states.
    error_code: str | None = Field(default=None, max_length=60)
    worked_seconds: float = Field(default=0.0, description="Time workers spent on it; waits do not count.")
    deadline_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    cancel_reason: str | None = Field(default=None, max_length=60)
    idempotency_key: str | None = Field(default=None, max_length=300)
    # sha256 of the request the key started this run for (runtime/idempotency.py).
    request_hash: str | None = Field(default=None, max_length=64)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="runtime_run.id", index=True)
    trace_parent: str | None = Field(default=None, max_length=100)  # W3C traceparent of its origin
    # Who started the run and with which role (None: Quire itself); see runtime/access.py.
    started_by: uuid.UUID | None = None
    started_role: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Step(TenantScoped, table=True):
    """A completed (or finally failed) step: its recorded result is what a replay returns."""

    __tablename__ = "runtime_step"

    run_id: uuid.UUID = Field(foreign_key="runtime_run.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    name: str = Field(max_length=300)
    kind: StepKind = Field(sa_column=enum_column(StepKind))
    status: str = Field(default="completed", max_length=20)
    attempt: int = 1
    result: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error_code: str | None = Field(default=None, max_length=60)
    started_at: datetime = Field(sa_column=timestamp_column())
    finished_at: datetime = Field(sa_column=timestamp_column())


class Signal(TenantScoped, table=True):
    """A message to a run, deduplicated by key, kept until the run consumes it."""

    __tablename__ = "runtime_signal"
    __table_args__ = (UniqueConstraint("run_id", "key", name="uq_runtime_signal_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="runtime_run.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    key: str = Field(max_length=300)
    payload: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    consumed_seq: int | None = None
    # Who sent it, as authenticated, and with which role (None: Quire itself).
    sender_id: uuid.UUID | None = None
    sender_role: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class HumanTask(TenantScoped, table=True):
    """A decision a run waits for, offered to a role (and optionally one assignee)."""

    __tablename__ = "runtime_task"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_runtime_task_step"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="runtime_run.id", index=True, ondelete="CASCADE")
    seq: int
    title: str = Field(max_length=500)
    role: str = Field(max_length=40)
    assignee: uuid.UUID | None = None
    payload: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    options: list[str] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    signal_name: str = Field(max_length=200)
    # The route that decides it when not the generic one (its domain's checks live there).
    decided_through: str | None = Field(default=None, max_length=300)
    status: str = Field(default="open", max_length=20, index=True)
    due_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    escalate_to: str | None = Field(default=None, max_length=40)
    escalated_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    decision: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    decided_by: uuid.UUID | None = None
    decided_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class RunEvent(TenantScoped, table=True):
    """One line of a run's audit trail; never updated, never deleted by the application."""

    __tablename__ = "runtime_event"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    run_id: uuid.UUID = Field(foreign_key="runtime_run.id", index=True, ondelete="CASCADE")
    type: str = Field(max_length=100)
    data: Any = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# What crosses the API.


class StepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    name: str
    kind: str
    status: str
    attempt: int
    result: Any
    error: str | None
    error_code: str | None = None
    started_at: datetime
    finished_at: datetime


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: uuid.UUID
    title: str
    role: str
    assignee: uuid.UUID | None
    payload: Any
    options: list[str] | None
    status: str
    due_at: datetime | None
    escalate_to: str | None
    escalated_at: datetime | None
    decided_through: str | None = None
    decision: Any
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    created_at: datetime


class TasksPublic(ListPage):
    data: list[TaskPublic]


class RunEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: uuid.UUID
    type: str
    data: Any
    created_at: datetime


class SignalPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key: str
    payload: Any
    consumed_seq: int | None
    sender_id: uuid.UUID | None = None
    created_at: datetime


class RunSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    program: str
    program_version: int
    status: RunStatus
    parent_id: uuid.UUID | None
    started_by: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    error_code: str | None = None


class RunsPublic(ListPage):
    data: list[RunSummary]


class RunPublic(RunSummary):
    input: dict[str, Any]
    state: dict[str, Any] | None
    wake_at: datetime | None
    waiting_for: dict[str, Any] | None
    cancel_requested: bool
    cancel_reason: str | None = None
    deadline_at: datetime | None = None
    worked_seconds: float = 0.0
    attempt: int
    recoveries: int
    steps: list[StepPublic] = []
    open_tasks: list[TaskPublic] = []
    pending_signals: list[SignalPublic] = []
    children: list[RunSummary] = []
