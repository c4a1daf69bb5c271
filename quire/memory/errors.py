"""What the memory layer raises."""

from __future__ import annotations

from typing import Any

from quire.core.errors import Conflict, InvalidRequest, NotFound, QuireError
from quire.runtime.errors import NonRetryable


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


class ReasonRequired(MemoryFailure, InvalidRequest):
    """A decision that needs a reason (a rejection) came without one: an invalid value, not a
    conflict with the memory's state."""

    code = "reason_required"


class SlotHasApprovedMemory(ReviewRefused):
    """A plain approve would leave two approved memories in one slot without anyone choosing so:
    the reviewer decides `supersede` (naming the memory it retires) or `keep_both`."""

    code = "slot_has_approved_memory"

    def __init__(self, message: str, *, existing: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.extra = {"existing": existing}  # the error body names them for clients


class SupersedeTargetInvalid(ReviewRefused):
    """`supersede` names no memory, or one that is not approved in the proposal's slot."""

    code = "supersede_target_invalid"


class MergeTargetInvalid(ReviewRefused):
    """The memory to merge into does not exist here, is not approved, or belongs elsewhere."""

    code = "merge_target_invalid"


class DecisionNoLongerApplies(MemoryFailure, NonRetryable):
    """Between a decision and its step the world changed (the merge target was withdrawn, say):
    the review run fails with the reason and the memory goes back to the queue."""

    code = "decision_no_longer_applies"
