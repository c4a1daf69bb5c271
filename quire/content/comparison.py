"""Two versions of a document side by side: their elements paired by element id in reading
order, and in each changed pair the words that changed. The word diff is the console's one: it
also shows a proposal's text beside its slot's approved memory, inline.

The pairing is the element diff's (`elements.diff`): an element edited in place keeps its id, so
its two texts sit on one row; an element only one version has sits across from a gap. The API's
diff (`diff_versions`) reads the same sides and lists the added, removed and changed elements.
"""

from __future__ import annotations

import difflib
import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from quire.content.elements import Side, diff
from quire.content.models import ElementChange, Version, VersionDiff
from quire.content.service import elements_of, get_version
from quire.core.db import TenantSession


class Change(enum.StrEnum):
    same = "same"
    changed = "changed"
    added = "added"
    removed = "removed"


@dataclass(frozen=True)
class Words:
    """A run of words of one side: `changed` when the other side does not have them."""

    text: str
    changed: bool


@dataclass(frozen=True)
class Pair:
    change: Change
    before: Side | None
    after: Side | None
    before_words: list[Words] = field(default_factory=list)
    after_words: list[Words] = field(default_factory=list)

    @property
    def element_id(self) -> uuid.UUID:
        side = self.after or self.before
        assert side is not None
        return side.element_id


@dataclass(frozen=True)
class Comparison:
    before: Version
    after: Version
    pairs: list[Pair]

    def count(self, change: Change) -> int:
        return sum(1 for pair in self.pairs if pair.change == change)


def align(before: Sequence[Side], after: Sequence[Side]) -> list[tuple[Side | None, Side | None]]:
    """Both versions' elements in reading order: each element of `after` with its earlier self
    (or None), and each element only `before` has where it stood, before what followed it."""
    position = {side.element_id: index for index, side in enumerate(before)}
    kept = {side.element_id for side in after}
    pairs: list[tuple[Side | None, Side | None]] = []
    next_old = 0  # the first element of `before` not yet passed
    for side in after:
        old = position.get(side.element_id)
        if old is None:
            pairs.append((None, side))
            continue
        while next_old < old:
            if before[next_old].element_id not in kept:
                pairs.append((before[next_old], None))
            next_old += 1
        next_old = max(next_old, old + 1)
        pairs.append((before[old], side))
    pairs.extend((side, None) for side in before[next_old:] if side.element_id not in kept)
    return pairs


# Words with the space after them (and any space before the first), so that joining a text's
# tokens gives it back exactly; words are compared without that space.
TOKENS = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Piece:
    """A piece of the inline diff: `same` in both texts, `removed` (only in the old one) or
    `added` (only in the new one)."""

    kind: str
    text: str


@dataclass(frozen=True)
class WordDiff:
    """Two texts compared word by word, in the two shapes the console shows: each side's runs
    (side by side, the words the other side lacks marked) and one inline sequence of pieces."""

    before: list[Words]
    after: list[Words]
    inline: list[Piece]


def _add_run(into: list[Words], text: str, changed: bool) -> None:
    if not text:
        return
    if into and into[-1].changed == changed:
        into[-1] = Words(into[-1].text + text, changed)
    else:
        into.append(Words(text, changed))


def _add_piece(into: list[Piece], kind: str, text: str) -> None:
    if not text:
        return
    if into and into[-1].kind == kind:
        into[-1] = Piece(kind, into[-1].text + text)
    else:
        into.append(Piece(kind, text))


def _space_after(text: str) -> tuple[str, str]:
    word = text.rstrip()
    return word, text[len(word) :]


def word_diff(before: str, after: str) -> WordDiff:
    """`before` and `after` compared word by word, once, in both shapes. Only words are marked,
    never the space after a changed word; a change of spacing alone shows only inline."""
    old, new = TOKENS.findall(before), TOKENS.findall(after)
    diff = WordDiff(before=[], after=[], inline=[])
    matcher = difflib.SequenceMatcher(a=[t.strip() for t in old], b=[t.strip() for t in new], autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            for old_token, new_token in zip(old[a0:a1], new[b0:b1], strict=True):
                _add_run(diff.before, old_token, False)
                _add_run(diff.after, new_token, False)
                word, old_space = _space_after(old_token)
                new_space = _space_after(new_token)[1]
                _add_piece(diff.inline, "same", word)
                if old_space == new_space:
                    _add_piece(diff.inline, "same", old_space)
                else:
                    _add_piece(diff.inline, "removed", old_space)
                    _add_piece(diff.inline, "added", new_space)
            continue
        (old_words, old_space), (new_words, new_space) = (
            _space_after("".join(old[a0:a1])),
            _space_after("".join(new[b0:b1])),
        )
        _add_run(diff.before, old_words, True)
        _add_run(diff.before, old_space, False)
        _add_run(diff.after, new_words, True)
        _add_run(diff.after, new_space, False)
        if old_space == new_space:
            _add_piece(diff.inline, "removed", old_words)
            _add_piece(diff.inline, "added", new_words)
            _add_piece(diff.inline, "same", old_space)
        else:
            _add_piece(diff.inline, "removed", old_words + old_space)
            _add_piece(diff.inline, "added", new_words + new_space)
    return diff


def pair(before: Side | None, after: Side | None) -> Pair:
    if before is None:
        return Pair(Change.added, None, after)
    if after is None:
        return Pair(Change.removed, before, None)
    if before.content_hash == after.content_hash:
        return Pair(Change.same, before, after)
    words = word_diff(before.text, after.text)
    return Pair(Change.changed, before, after, words.before, words.after)


def _sides(session: Session, version: Version) -> list[Side]:
    return [
        Side(e.element_id, e.type, e.text, e.content_hash, e.page, list(e.section_path))
        for e in elements_of(session, version.id)
    ]


def compare_versions(
    session: TenantSession, *, document_id: uuid.UUID, from_number: int, to_number: int
) -> Comparison:
    """Version `from_number` of the document beside version `to_number`, element by element."""
    before = get_version(session, document_id=document_id, number=from_number)
    after = get_version(session, document_id=document_id, number=to_number)
    pairs = [pair(old, new) for old, new in align(_sides(session, before), _sides(session, after))]
    return Comparison(before=before, after=after, pairs=pairs)


def diff_versions(
    session: TenantSession, *, document_id: uuid.UUID, from_number: int, to_number: int
) -> VersionDiff:
    """The API's diff of two versions: the elements added, removed and changed, by element id."""
    before = get_version(session, document_id=document_id, number=from_number)
    after = get_version(session, document_id=document_id, number=to_number)
    result = diff(_sides(session, before), _sides(session, after))

    def change(old: Side | None, new: Side | None) -> ElementChange:
        side = new or old
        assert side is not None
        return ElementChange(
            element_id=side.element_id,
            type=side.type,
            before=old.text if old else None,
            after=new.text if new else None,
            page=side.page,
            section_path=side.section_path,
        )

    return VersionDiff(
        document_id=document_id,
        from_version=from_number,
        to_version=to_number,
        added=[change(None, s) for s in result.added],
        removed=[change(s, None) for s in result.removed],
        changed=[change(old, new) for old, new in result.changed],
        unchanged=result.unchanged,
    )
