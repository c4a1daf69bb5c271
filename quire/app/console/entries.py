"""What a run's timeline is made of: entries, long texts clipped for the page, and how times,
token counts and values read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CLIP_CHARS = 600  # of a long output shown before "show all"
CLIP_LINES = 8
MAX_CHARS = 200_000  # of a long output shown at all


@dataclass(frozen=True)
class Clip:
    """A long text: its head, shown at once, and the whole, behind "show all"."""

    head: str
    full: str
    size: int

    @property
    def clipped(self) -> bool:
        return self.head != self.full

    @classmethod
    def of(cls, text: str, limit: int = CLIP_CHARS, lines: int = CLIP_LINES) -> Clip:
        cut = min(len(text), limit)
        newlines = [i for i, char in enumerate(text[:cut]) if char == "\n"]
        if len(newlines) >= lines:
            cut = newlines[lines - 1]
        head = text if cut >= len(text) else text[:cut].rstrip() + " …"
        full = text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"\n… ({len(text) - MAX_CHARS:,} more)"
        return cls(head=head, full=full, size=len(text))


@dataclass(frozen=True)
class RequestedCall:
    """A tool call a model asked for, as its entry lists it."""

    id: str
    name: str
    arguments: str
    problem: str | None
    anchor: str


@dataclass
class Entry:
    kind: str  # model, tool, fallback, retry, throttle, wait, task, decision, resume, recovery, run, step, …
    title: str
    at: datetime
    offset: str  # since the run was created
    tone: str = "info"  # ok, bad, warn, wait, info, muted
    facts: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""  # prose shown whole: the assistant's text, an error, a comment
    output: Clip | None = None  # a tool's output or a step's result
    arguments: str = ""  # a tool call's arguments, as JSON
    calls: list[RequestedCall] = field(default_factory=list)
    link: tuple[str, str] | None = None  # (url, label)
    anchor: str = ""
    seq: int | None = None


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def anchor_for(call_id: str) -> str:
    return "call-" + re.sub(r"[^A-Za-z0-9_-]", "_", call_id)


def seconds(value: float) -> str:
    """12 ms, 3.2 s, 4 min 5 s, 2 h 5 min: a span as a person reads it."""
    if value < 0:
        value = 0.0
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if value < 86400:
        hours, rest = divmod(round(value) // 60, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, rest = divmod(round(value) // 3600, 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


def tokens(value: int) -> str:
    return f"{value:,}"


def mapping_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def moment(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return ""
