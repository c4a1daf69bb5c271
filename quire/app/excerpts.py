"""A search hit's passage as one readable line: whole sentences around the query's words.

The database's headline marks the words («like this») but cuts fragments anywhere, so a hit read
"…, plus the public"; the line is cut from the hit's own text instead, at a sentence boundary,
or a word boundary with an ellipsis when the sentence is too long for a line.
"""

from __future__ import annotations

import re

MARK = re.compile(r"«([^»]+)»")
SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def marked_words(snippet: str) -> list[str]:
    return list(dict.fromkeys(word.strip() for word in MARK.findall(snippet) if word.strip()))


def excerpt(text: str, snippet: str, *, width: int = 160, headings: tuple[str, ...] = ()) -> str:
    """Whole sentences of `text` around the first passage of `snippet`, at most `width` characters.
    Leading lines that only repeat one of `headings` (a chunk starts with its section's title) are
    left out, unless they are all there is."""
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    known = {h.strip().casefold() for h in headings}
    lines = text.split("\n")
    while len(lines) > 1 and (not lines[0].strip() or lines[0].strip().casefold() in known):
        lines.pop(0)
    text = "\n".join(lines).strip()
    anchor = _anchor(text, snippet)
    start = 0
    for end in SENTENCE_END.finditer(text, 0, anchor):
        start = end.end()
    if anchor - start > width // 2:  # a long sentence: start near the words, at a word boundary
        space = text.find(" ", anchor - width // 3)
        start = space + 1 if 0 <= space < anchor else anchor
    stop = len(text)
    for end in SENTENCE_END.finditer(text, anchor):
        stop = end.end() if text[end.start()] != "\n" else end.start()
        if stop - start >= width // 3:
            break
    line = " ".join(text[start:stop].split())
    lead = "… " if not _after_boundary(text, start) else ""
    if len(line) > width:
        cut = line.rfind(" ", 0, width)
        line = line[: cut if cut > 0 else width].rstrip(" ,;:") + " …"
    return lead + line


def _after_boundary(text: str, start: int) -> bool:
    before = text[:start].rstrip(" ")
    return not before or before[-1] in ".!?\n"


def _anchor(text: str, snippet: str) -> int:
    """Where the earliest word the snippet marks is in `text` (its first passage's, if there).
    The earliest, not the first marked: the first is often the section's heading, left out of
    `text`, whose word comes again only at the end of the sentence that matters."""
    first = snippet.split(" … ")[0]
    lowered = text.lower()
    for words in (marked_words(first), marked_words(snippet)):
        found = [at for at in (lowered.find(word.lower()) for word in words) if at >= 0]
        if found:
            return min(found)
    return 0
