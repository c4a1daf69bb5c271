"""Which unstructured partitioner reads which file type, and with which arguments.

Each type goes straight to its own partitioner rather than through `unstructured.partition.auto`,
so that the arguments are Quire's (tables as HTML, email attachments, the encoding Quire picks)
and PDFs go to Quire's text-layer reader (`pdf.py`).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quire.content.parsing.encoding import text_encoding
from quire.content.parsing.pdf import partition_pdf

if TYPE_CHECKING:
    from unstructured.documents.elements import Element
    from unstructured.file_utils.model import FileType

LANGUAGES = ["eng"]

# FileType name -> (module under unstructured.partition, function, extra keyword arguments).
PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "DOCX": ("docx", "partition_docx", {"infer_table_structure": True}),
    "PPTX": ("pptx", "partition_pptx", {"infer_table_structure": True}),
    "XLSX": ("xlsx", "partition_xlsx", {"infer_table_structure": True, "find_subtable": False}),
    # Excel 97-2003 files take the same path: partition_xlsx reads them with xlrd.
    "XLS": ("xlsx", "partition_xlsx", {"infer_table_structure": True, "find_subtable": False}),
    "HTML": ("html", "partition_html", {}),
    "MD": ("md", "partition_md", {}),
    "TXT": ("text", "partition_text", {}),
    "EML": ("email", "partition_email", {"process_attachments": True}),
    "MSG": ("msg", "partition_msg", {"process_attachments": True}),
    "EPUB": ("epub", "partition_epub", {}),
    "RTF": ("rtf", "partition_rtf", {}),
    "ODT": ("odt", "partition_odt", {}),
    "CSV": ("csv", "partition_csv", {"infer_table_structure": True}),
    "TSV": ("tsv", "partition_tsv", {"infer_table_structure": True}),
    "JSON": ("json", "partition_json", {}),
    "NDJSON": ("ndjson", "partition_ndjson", {}),
    "XML": ("xml", "partition_xml", {}),
    "RST": ("rst", "partition_rst", {}),
    "ORG": ("org", "partition_org", {}),
}
# Types read as text, in the encoding `text_encoding` picks.
TEXTUAL = {"HTML", "MD", "TXT", "CSV", "TSV", "JSON", "NDJSON", "XML"}
# Types whose page numbers mean something (slides and sheets count as pages, as in unstructured).
PAGED = {"PDF", "DOCX", "ODT", "PPTX", "XLSX", "XLS"}


def partition(data: bytes, file_type: FileType, filename: str | None) -> tuple[list[Element], int | None]:
    """unstructured's elements for `data`, and the page count where it is known."""
    if file_type.name == "PDF":
        return partition_pdf(data)
    module, function, extra = PARTITIONERS[file_type.name]
    partitioner: Callable[..., list[Element]] = getattr(
        importlib.import_module(f"unstructured.partition.{module}"), function
    )
    kwargs: dict[str, Any] = {"metadata_filename": filename, "languages": LANGUAGES, **extra}
    if file_type.name in TEXTUAL:
        kwargs["encoding"] = text_encoding(data)
    elements = partitioner(file=io.BytesIO(data), **kwargs)
    page_count = None
    if file_type.name == "PPTX":
        import pptx

        page_count = len(pptx.Presentation(io.BytesIO(data)).slides)
    return elements, page_count
