"""What the memory layer raises."""

from __future__ import annotations

from quire.core.errors import Conflict, InvalidRequest, NotFound, QuireError


class MemoryFailure(QuireError):
    """Base class for memory errors (not `MemoryError`: that one is Python's)."""

    code = "memory_error"


class MemoryNotFound(MemoryFailure, NotFound):
    code = "memory_not_found"


class MissingEvidence(MemoryFailure, InvalidRequest):
    """A proposal without evidence, or with evidence that does not hold (a quote not found)."""

    code = "missing_evidence"


class ReviewRefused(MemoryFailure, Conflict):
    """The decision does not fit the memory's state; the message says why."""

    code = "review_refused"
