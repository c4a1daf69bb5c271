"""Tenants, principals and API keys, and the convention every tenant-owned table follows."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Column, DateTime, Enum, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class EnumText(TypeDecorator[Any]):
    """A StrEnum stored as plain text: rows read back as the enum, not as str."""

    impl = Text
    cache_ok = True

    def __init__(self, enum_type: type[enum.StrEnum]) -> None:
        super().__init__()
        self.enum_type = enum_type

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> enum.StrEnum | None:
        return None if value is None else self.enum_type(value)


def enum_column(enum_type: type[enum.StrEnum], *, index: bool = False) -> Column[Any]:
    return Column(EnumText(enum_type), nullable=False, index=index)


def timestamp_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class Role(enum.StrEnum):
    """What a principal may do. Each role includes the ones before it."""

    reader = "reader"
    contributor = "contributor"
    reviewer = "reviewer"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


class TenantScoped(SQLModel):
    """Mixin for rows that belong to a tenant.

    The migration of every table that uses it calls `enable_tenant_isolation`, which adds the
    row-level security policy; `tests/core/test_tenancy.py` checks that none was forgotten.
    """

    tenant_id: uuid.UUID = Field(foreign_key="core_tenant.id", index=True, ondelete="CASCADE")


class Tenant(SQLModel, table=True):
    __tablename__ = "core_tenant"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # Nobody approves a memory they proposed or edited (memory review reads it).
    separation_of_duties: bool = True


class TenantSettings(BaseModel):
    """What a tenant's administrator may set for the whole tenant."""

    model_config = ConfigDict(from_attributes=True)

    separation_of_duties: bool = PydanticField(
        default=True, description="Nobody approves a memory they proposed or edited."
    )


class Principal(TenantScoped, table=True):
    """A person or a program acting in one tenant with one role."""

    __tablename__ = "core_principal"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_column=Column(Enum(Role, name="core_role"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ApiKey(TenantScoped, table=True):
    """An API key; only its SHA-256 is stored (a 256-bit random key needs no slow hash)."""

    __tablename__ = "core_api_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    principal_id: uuid.UUID = Field(foreign_key="core_principal.id", index=True, ondelete="CASCADE")
    prefix: str = Field(max_length=16, description="The key's first characters, to recognise it.")
    key_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class PrincipalPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: Role


class ApiKeyPublic(BaseModel):
    """A key as an admin sees it: enough to recognise and revoke it, never its hash."""

    id: uuid.UUID
    prefix: str
    principal_id: uuid.UUID
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
