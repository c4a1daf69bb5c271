"""A long HTML page in parts: the blocks of its content, and a range of them cut out as a page.

unstructured reads a page's `<main>` (else its `<body>`) as a flow of blocks, and the text and
inline elements that follow a block make one element with it. So a page is cut only before a
block, never inside a run of text, and from the element that holds the content (below wrappers
that hold nothing else), where the blocks are. The page is read with unstructured's own lxml
parser, in the encoding its partitioner reads the whole page with, so that the blocks counted
here are the ones it reads; each part keeps the page's `<head>` and the wrappers around its
content, and parsed alone gives the elements it gives in the whole.
"""

from __future__ import annotations

from typing import Any

from quire.content.parsing.encoding import text_encoding

# unstructured drops these before it reads a page (its partitioner's list): the parts drop them
# from the content too, so that a script between two sections is not counted as a block.
DROPPED = ("del", "link", "meta", "noscript", "script", "style")


def html_blocks(data: bytes) -> list[int]:
    """The size of each block of a page's content, in characters of text."""
    container = _content(_tree(data))
    sizes = []
    for index, nodes in enumerate(_blocks(container)):
        lead = len(container.text or "") if index == 0 else 0
        sizes.append(lead + sum(len("".join(node.itertext())) + len(node.tail or "") for node in nodes))
    return sizes


def html_cut(data: bytes, first: int, last: int) -> bytes:
    """Blocks `first` to `last` (from 1) of a page, as a page of their own, in UTF-8."""
    from lxml import etree

    root = _tree(data)
    container = _content(root)
    if first > 1:
        container.text = None  # the text before the first block belongs to the first part
    for index, nodes in enumerate(_blocks(container), start=1):
        if not first <= index <= last:
            for node in nodes:
                container.remove(node)  # with its tail: the text after a block is its own
    for meta in root.iterfind(".//head/meta"):
        if meta.get("charset") is not None:
            meta.set("charset", "utf-8")
        elif (meta.get("http-equiv") or "").lower() == "content-type":
            meta.set("content", "text/html; charset=utf-8")
    return bytes(etree.tostring(root.getroottree(), method="html", encoding="utf-8"))


def _tree(data: bytes) -> Any:
    """The page as unstructured's partitioner parses it (partition/html/partition.py)."""
    from lxml import etree
    from unstructured.partition.html.parser import html_parser

    text = data.decode(text_encoding(data))
    try:
        return etree.fromstring(text, html_parser)
    except ValueError:  # a str with an XML encoding declaration; unstructured parses its UTF-8
        return etree.fromstring(text.encode("utf-8"), html_parser)


def _content(root: Any) -> Any:
    """The element whose children are the page's blocks, its dropped elements gone."""
    from lxml import etree
    from unstructured.partition.html.parser import Flow

    for child in root:
        if child.tag != "head":  # the head keeps its charset; unstructured drops it anyway
            etree.strip_elements(child, *DROPPED, with_tail=False)
    container = root.find(".//main")
    if container is None:
        container = root.find(".//body")
    if container is None:
        container = root
    # Down through wrappers (a <div> that is all of the page, as many sites write it), but not
    # into a block such as a table or a list, whose parts would not read as it does whole.
    while (
        len(container) == 1
        and type(container[0]) is Flow
        and not (container.text or "").strip()
        and not (container[0].tail or "").strip()
    ):
        container = container[0]
    return container


def _blocks(container: Any) -> list[list[Any]]:
    """The container's children, each block with the inline elements that follow it.

    Inline elements before the first block read as one element with the container's own text:
    they make the first block. The container's own text goes with the first block.
    """
    blocks: list[list[Any]] = []
    for child in container:
        if _is_block(child) or not blocks:
            blocks.append([child])
        else:
            blocks[-1].append(child)
    return blocks


def _is_block(node: Any) -> bool:
    return not node.is_phrasing
