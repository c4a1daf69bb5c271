"""The body of a 202: what was asked is recorded and happens a moment later, and where to see it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StatusLink(BaseModel):
    status: str = Field(description="GET this path to see whether it has happened.")


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    links: StatusLink
