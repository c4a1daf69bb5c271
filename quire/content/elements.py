"""Element identity across versions, and the element-level diff it makes exact.

A new version's elements are aligned with the previous version's by content: an element whose
type and text are unchanged keeps its id (wherever it moved); an element edited in place keeps
its id too, with a new content hash; everything else gets a new id. Ids are never derived from
positions, so inserting a paragraph at the top changes nothing below it.
"""

from __future__ import annotations

import difflib
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Below this similarity, an element in the place of another is a new element, not an edit.
EDIT_SIMILARITY = 0.5


class HasContent(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def html(self) -> str | None: ...


def content_hash(element: HasContent) -> str:
    digest = hashlib.sha256()
    for part in (element.type, element.text, element.html or ""):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class Previous:
    element_id: uuid.UUID
    type: str
    text: str
    content_hash: str


def assign_ids(previous: Sequence[Previous], current: Sequence[HasContent]) -> list[uuid.UUID]:
    """Ids for `current` elements, reusing those of `previous` (the last version's elements)."""
    current_hashes = [content_hash(element) for element in current]
    ids: list[uuid.UUID | None] = [None] * len(current)
    used: set[uuid.UUID] = set()
    matcher = difflib.SequenceMatcher(a=[p.content_hash for p in previous], b=current_hashes, autojunk=False)
    replaced: list[tuple[range, range]] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(a1 - a0):
                ids[b0 + offset] = previous[a0 + offset].element_id
                used.add(previous[a0 + offset].element_id)
        elif tag == "replace":
            replaced.append((range(a0, a1), range(b0, b1)))

    # Moved elements: same content elsewhere.
    unused_by_hash: dict[str, list[Previous]] = defaultdict(list)
    for p in previous:
        if p.element_id not in used:
            unused_by_hash[p.content_hash].append(p)
    for index, digest in enumerate(current_hashes):
        if ids[index] is None and unused_by_hash.get(digest):
            match = unused_by_hash[digest].pop(0)
            ids[index] = match.element_id
            used.add(match.element_id)

    # Edited in place: within a replaced block, pair the most similar elements of one type.
    for old_range, new_range in replaced:
        candidates = [previous[i] for i in old_range if previous[i].element_id not in used]
        for index in new_range:
            if ids[index] is not None:
                continue
            element = current[index]
            best, best_ratio = None, EDIT_SIMILARITY
            for candidate in candidates:
                if candidate.element_id in used or candidate.type != element.type:
                    continue
                ratio = difflib.SequenceMatcher(a=candidate.text, b=element.text, autojunk=False).ratio()
                if ratio >= best_ratio:
                    best, best_ratio = candidate, ratio
            if best is not None:
                ids[index] = best.element_id
                used.add(best.element_id)

    return [element_id or uuid.uuid4() for element_id in ids]


@dataclass(frozen=True)
class Side:
    element_id: uuid.UUID
    type: str
    text: str
    content_hash: str
    page: int | None
    section_path: list[str]


@dataclass(frozen=True)
class Diff:
    added: list[Side]
    removed: list[Side]
    changed: list[tuple[Side, Side]]
    unchanged: int


def diff(before: Sequence[Side], after: Sequence[Side]) -> Diff:
    """Elements added, removed and changed between two versions, by element id."""
    old = {side.element_id: side for side in before}
    new_ids = {side.element_id for side in after}
    added = [side for side in after if side.element_id not in old]
    removed = [side for side in before if side.element_id not in new_ids]
    changed = [
        (old[side.element_id], side)
        for side in after
        if side.element_id in old and old[side.element_id].content_hash != side.content_hash
    ]
    unchanged = sum(
        1
        for side in after
        if side.element_id in old and old[side.element_id].content_hash == side.content_hash
    )
    return Diff(added=added, removed=removed, changed=changed, unchanged=unchanged)
