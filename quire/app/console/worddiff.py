"""A word-level diff of two short texts, for showing a reviewer what a newer memory changes."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Words with the space after them, so that joining the pieces gives back the text exactly.
TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Piece:
    kind: str  # "same", "removed" (only in the old text), "added" (only in the new one)
    text: str


def word_diff(old: str, new: str) -> list[Piece]:
    """The pieces that turn `old` into `new`, word by word (a replacement: removed, then added)."""
    before, after = TOKEN.findall(old), TOKEN.findall(new)
    # Compare words without their trailing spaces, so "six " and "six" match.
    matcher = difflib.SequenceMatcher(
        a=[t.strip() for t in before], b=[t.strip() for t in after], autojunk=False
    )
    pieces: list[Piece] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(after[b1:b2])))
            continue
        if a2 > a1:
            pieces.append(Piece("removed", "".join(before[a1:a2])))
        if b2 > b1:
            pieces.append(Piece("added", "".join(after[b1:b2])))
    return pieces
