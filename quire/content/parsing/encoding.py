"""Which encoding a text file is read with: Quire picks it, not unstructured.

unstructured's own guess reads short French cp1252 text as Baltic cp1257; the textual
partitioners are given the encoding `text_encoding` picks instead.
"""

from __future__ import annotations

# Preferred among single-byte encodings that decode a text equally well.
_PREFERRED = ("utf_8", "cp1252", "iso8859_15", "latin_1", "cp1250")
_BYTE_ORDER_MARKS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def text_encoding(data: bytes) -> str:
    """The encoding to read `data` with: UTF-8 (or a BOM's) when valid, else the best guess.

    Among charset-normalizer's candidates that read the text about as cleanly as its favourite,
    the one decoding the most non-ASCII characters to letters wins, and Western European
    encodings win ties: short French or German text is otherwise often read as Baltic or
    Central European.
    """
    for bom, name in _BYTE_ORDER_MARKS:
        if data.startswith(bom):
            return name
    if _decodes(data, "utf-8"):
        return "utf-8"
    import charset_normalizer

    sample = data[: 1 << 20]
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        return "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    best_chaos = min(match.percent_chaos for match in matches)
    candidates = [m.encoding for m in matches if m.percent_chaos <= best_chaos + 6.0]

    def rank(encoding: str) -> tuple[float, int]:
        text = sample.decode(encoding, errors="replace")
        non_ascii = [char for char in text if ord(char) > 127]
        letters = sum(char.isalpha() for char in non_ascii) / max(len(non_ascii), 1)
        preference = _PREFERRED.index(encoding) if encoding in _PREFERRED else len(_PREFERRED)
        return (-round(letters, 2), preference)

    return min(candidates, key=rank)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False
