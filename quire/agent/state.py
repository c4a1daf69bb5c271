"""What an agent run is asked and what it produced: the state the agent loop replays."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from quire.agent.citations import AnswerCitation
from quire.agent.costs import Budget, Spend
from quire.core.models import Role


class AgentState(BaseModel):
    question: str
    collections: list[str] = Field(default_factory=list)
    route: str | None = None
    budget: Budget = Field(default_factory=Budget)
    agent: str = "assistant"
    # Whom the run acts for. A run started through the API acts for its owner, whatever its state
    # says (see `answer`); these count only for runs Quire's own code starts without one.
    principal_id: uuid.UUID | None = None
    role: Role = Role.reader
    stream: bool = False
    pinned: list[str] = Field(default_factory=list, description="Facts kept in the system prompt.")
    context_tokens: int | None = Field(default=None, description="Overrides the target's context budget.")
    tools: list[str] | None = Field(default=None, description="Core tools offered (default: CORE_TOOLS).")
    disclosure: bool = Field(default=True, description="Offer find_tools, load_tools and tool_help.")
    preload: int = Field(default=0, ge=0, le=10, description="Load this many best-matching tools up front.")
    max_loaded: int = Field(default=8, ge=1, le=50, description="Loaded tools kept at once (LRU).")
    loaded: list[str] = Field(
        default_factory=list, description="Loaded tools, in the order they were loaded."
    )
    last_used: dict[str, int] = Field(default_factory=dict)
    ask_human_due_seconds: float | None = Field(
        default=None, gt=0, description="How long ask_human waits for a person (default: for ever)."
    )
    if_unanswered: Literal["give_up", "escalate"] = Field(
        default="give_up",
        description="When ask_human's due time passes: go on without an answer, or offer the "
        "question to reviewers and keep waiting.",
    )
    # What the run produced.
    answer: str | None = None
    citations: list[AnswerCitation] = Field(default_factory=list)
    unresolved_citations: list[int] = Field(
        default_factory=list, description="Numbers the answer cites that name no source it was given."
    )
    uncited: bool = Field(default=False, description="The answer cites no source.")
    spend: Spend = Field(default_factory=Spend)
    turns: int = 0
    stop_reason: str | None = None
    targets: list[str] = Field(default_factory=list)
