"""Text quality: what in a parsed document a reader would find garbled, with the pages concerned.

They flag; they repair one thing only, letter-spaced words ("I   w o u l d   l i k e"), and only
where the text still shows the wider gaps between words: `join_letter_spaced` runs on a PDF text
box before its spaces are collapsed, marks the element with `JOINED`, and `review` reports it.
Everything else is left as parsed and reported by `review`, pure functions over the elements.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from quire.content.parsing.results import ParsedElement, QualityWarning

LETTER_SPACED = "letter_spaced_text"
FRAGMENTED = "fragmented_text"
ENCRYPTED = "encrypted_content"
UNDECODABLE = "undecodable_text"
# The metadata key of an element whose letter-spaced words were joined.
JOINED = "letter_spacing_joined"

_WORD_GAP = re.compile(r"[^\S\n]{2,}")
_SPACE = re.compile(r"[^\S\n]+")
# A line is letter-spaced when at least this many of its pieces are single characters, and
# they are most of them (ligatures such as "fi" come out as two).
_MIN_LETTERS = 6
_LETTER_SHARE = 0.8
# A fragment: a few characters of a line, or a few letters set apart ("y l r e t r a u Q").
_FRAGMENT_CHARS = 20
_MIN_FRAGMENTS = 10
_FRAGMENT_SHARE = 0.5
# Replacement characters, UTF-8 read as cp1252 ("Ã©", "â€™"), glyphs without a character
# ("(cid:72)", pdfminer's way of saying it found no mapping).
_UNDECODABLE = re.compile(r"\ufffd|Ã[\u00a0-\u00bf\u0152-\u2122]|â€|\(cid:\d+\)")
_MIN_UNDECODABLE = 3
_UNDECODABLE_SHARE = 0.01
_PGP_ARMOR = "-----BEGIN PGP MESSAGE-----"


def join_letter_spaced(text: str) -> str | None:
    """The text with its letter-spaced lines joined into words, or None when there were none.

    Letters one space apart make a word, and wider gaps separate words: pdfminer writes a gap
    wider than a letter's as a space, so a word break becomes two or more.
    """
    joined, changed = [], False
    for line in text.split("\n"):
        words = [word for word in _WORD_GAP.split(line.strip()) if word]
        pieces = [piece for word in words for piece in _SPACE.split(word)]
        letters = sum(len(piece) == 1 for piece in pieces)
        if (
            len(words) > 1
            and letters >= _MIN_LETTERS
            and letters >= _LETTER_SHARE * len(pieces)
            and all(len(piece) <= 3 for piece in pieces)
        ):
            line = " ".join(_SPACE.sub("", word) for word in words)
            changed = changed or line != " ".join(pieces)
        joined.append(line)
    return "\n".join(joined) if changed else None


def encrypted_email(data: bytes) -> str | None:
    """The scheme ("PGP", "S/MIME") that encrypts an email's body (RFC 3156, RFC 8551), or None."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    content_type = headers.get_content_type()
    if content_type == "multipart/encrypted":
        protocol = str(headers.get_param("protocol", "an unknown protocol"))
        return "PGP" if "pgp" in protocol.lower() else protocol
    if content_type in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        kind = str(headers.get_param("smime-type", "enveloped-data")).lower()
        return "S/MIME" if kind in ("enveloped-data", "authenveloped-data") else None
    return None


def review(elements: Sequence[ParsedElement], *, encrypted: str | None = None) -> tuple[QualityWarning, ...]:
    """The warnings a document's elements call for; `encrypted` names an encrypted email's kind."""
    warnings: list[QualityWarning] = []
    if encrypted is not None:
        warnings.append(
            QualityWarning(
                ENCRYPTED, f"the email's body is encrypted ({encrypted}); only its headers could be read"
            )
        )
    elif any(_PGP_ARMOR in e.text for e in elements):
        pages = _pages(e for e in elements if _PGP_ARMOR in e.text)
        warnings.append(
            QualityWarning(ENCRYPTED, f"an encrypted PGP message{_on(pages)} cannot be read", pages)
        )
    by_page: dict[int | None, list[ParsedElement]] = defaultdict(list)
    for element in elements:
        by_page[element.page].append(element)
    fragmented = {page for page, group in by_page.items() if _fragmented(group)}
    joined = _pages(e for e in elements if e.metadata.get(JOINED))
    if any(e.metadata.get(JOINED) for e in elements):
        warnings.append(QualityWarning(LETTER_SPACED, f"joined letter-spaced words{_on(joined)}", joined))
    spaced = [e for e in elements if e.page not in fragmented and _letter_spaced(e.text)]
    if spaced:
        pages = _pages(spaced)
        warnings.append(
            QualityWarning(
                LETTER_SPACED,
                f"letter-spaced text{_on(pages)}, not joined: its word breaks are lost",
                pages,
            )
        )
    if fragmented:
        pages = _pages(e for e in elements if e.page in fragmented)
        warnings.append(
            QualityWarning(
                FRAGMENTED,
                f"text{_on(pages)} comes out as short fragments (rotated or scattered letters)",
                pages,
            )
        )
    undecodable = [page for page, group in by_page.items() if _undecodable(group)]
    if undecodable:
        pages = _pages(e for e in elements if e.page in undecodable)
        warnings.append(
            QualityWarning(
                UNDECODABLE,
                f"undecodable characters{_on(pages)} (replacement characters, text decoded with "
                "the wrong encoding, or glyphs without a character)",
                pages,
            )
        )
    return tuple(warnings)


def _letter_spaced(text: str) -> bool:
    pieces = text.split()
    letters = sum(len(piece) == 1 and piece.isalnum() for piece in pieces)
    return letters >= 10 and letters >= 0.7 * len(pieces)


def _fragment(text: str) -> bool:
    pieces = text.split()
    characters = sum(len(piece) for piece in pieces)
    if characters > _FRAGMENT_CHARS or not any(c.isalpha() for c in text):
        return False
    letters = sum(len(piece) == 1 for piece in pieces)
    return characters == 1 or (len(pieces) > 1 and letters >= _LETTER_SHARE * len(pieces))


def _fragmented(group: Sequence[ParsedElement]) -> bool:
    fragments = sum(_fragment(e.text) for e in group)
    return fragments >= _MIN_FRAGMENTS and fragments >= _FRAGMENT_SHARE * len(group)


def _undecodable(group: Sequence[ParsedElement]) -> bool:
    found = sum(len(_UNDECODABLE.findall(e.text)) for e in group)
    characters = sum(len(e.text) - e.text.count(" ") for e in group)
    return found >= _MIN_UNDECODABLE and found >= _UNDECODABLE_SHARE * characters


def _pages(elements: Iterable[ParsedElement]) -> tuple[int, ...]:
    return tuple(sorted({e.page for e in elements if e.page is not None}))


def _on(pages: Sequence[int]) -> str:
    """The pages as words (" on page 3", " on pages 1, 3-5"), or nothing when there are none."""
    if not pages:
        return ""
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][-1] + 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    spans = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    return f" on page{'s' if len(pages) > 1 else ''} {spans}"
