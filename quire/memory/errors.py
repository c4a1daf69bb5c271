"""What the memory layer raises."""

from __future__ import annotations

from quire.core.errors import Conflict, InvalidRequest, NotFound, QuireError


class MemoryError_(QuireError):
    """Base class for memory errors."""

    code = "memory_error"


class MemoryNotFound(NotFound):
    code = "memory_not_found"


class MissingEvidence(InvalidRequest):
    """A proposal without evidence, or with evidence that does not hold (a quote not found)."""

    code = "missing_evidence"


class ReviewRefused(Conflict):
    """The decision does not fit the memory's state; the message says why."""

    code = "review_refused"
