"""A long HTML page in parts: the blocks of its content, and a range of them cut out as a page.

unstructured reads a page's `<main>` (else its `<body>`) as a flow of blocks, and the text and
inline elements that follow a block make one element with it. So a page is cut only before a
block, never inside a run of text, and inside the wrappers that hold its content. The page is
read with unstructured's own lxml parser, in the encoding its partitioner reads the whole page
with, so that the blocks counted here are the ones it reads; each part keeps the page's `<head>`
and the wrappers around its content, and parsed alone gives the elements it gives in the whole.
"""

from __future__ import annotations

from typing import Any

from quire.content.parsing.encoding import text_encoding

# unstructured drops these before it reads a page (its partitioner's list): the parts drop them
# from the content too, so that a script between two sections is not counted as a block.
DROPPED = ("del", "link", "meta", "noscript", "script", "style")


def html_blocks(data: bytes) -> list[int]:
    """The size of each block of a page's content, in characters of text."""
    return [
        (len(parent.text or "") if lead else 0)
        + sum(len("".join(node.itertext())) + len(node.tail or "") for node in nodes)
        for parent, nodes, lead in _blocks(_content(_tree(data)))
    ]


def html_cut(data: bytes, first: int, last: int) -> bytes:
    """Blocks `first` to `last` (from 1) of a page, as a page of their own, in UTF-8."""
    from lxml import etree

    root = _tree(data)
    for index, (parent, nodes, lead) in enumerate(_blocks(_content(root)), start=1):
        if not first <= index <= last:
            if lead:
                parent.text = None
            for node in nodes:
                parent.remove(node)  # with its tail: the text after a block reads with it
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
    """The element whose blocks are the page's, its dropped elements gone."""
    from lxml import etree

    for child in root:
        if child.tag != "head":  # the head keeps its charset; unstructured drops it anyway
            etree.strip_elements(child, *DROPPED, with_tail=False)
    for path in (".//main", ".//body"):
        if (container := root.find(path)) is not None:
            return container
    return root


def _blocks(container: Any) -> list[tuple[Any, list[Any], bool]]:
    """The blocks of the content, in order: (parent, its nodes, whether the parent's text leads).

    A block is a child that is not inline, with the inline elements that follow it (they read as
    one element with its tail); the text and inline elements before a parent's first block make
    a block too. Wrappers (a <div> or <section> with no text of its own around it, as sites
    nest their content) are not blocks: their blocks are, so that a page cuts inside them. A
    table, a list or a paragraph is one block, never cut.
    """
    from unstructured.partition.html.parser import Flow

    blocks: list[tuple[Any, list[Any], bool]] = []

    def walk(parent: Any) -> None:
        groups: list[list[Any]] = []
        for child in parent:
            if _is_block(child) or not groups:
                groups.append([child])
            else:
                groups[-1].append(child)
        if (parent.text or "").strip() and (not groups or _is_block(groups[0][0])):
            groups.insert(0, [])
        for index, nodes in enumerate(groups):
            lead = index == 0 and (not nodes or not _is_block(nodes[0]))
            if not lead and len(nodes) == 1 and type(nodes[0]) is Flow and not (nodes[0].tail or "").strip():
                walk(nodes[0])
            else:
                blocks.append((parent, nodes, lead))

    walk(container)
    return blocks


def _is_block(node: Any) -> bool:
    return not node.is_phrasing
