"""PDFs: their text layer, read with pdfminer through unstructured's helpers, and nothing more.

unstructured's `partition_pdf` imports `unstructured_inference` (layout models, torch) even for
the "fast" strategy, and Quire does not install it. `partition_pdf` here does what the fast
strategy does without it; `route_pdfs_to_text_layer_partitioner` makes unstructured use it for
PDFs attached to emails too. `refuse_pdf_reference_loops` guards pdfminer against a PDF whose
objects refer to themselves.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from quire.content.parsing.errors import CorruptFile, UnsupportedFileType
from quire.content.parsing.quality import JOINED, join_letter_spaced

if TYPE_CHECKING:
    from unstructured.documents.elements import Element


def partition_pdf(data: bytes) -> tuple[list[Element], int]:
    """The text layer of a PDF as unstructured's fast strategy reads it, without its layout models.

    Each pdfminer text box becomes one element, classified by unstructured's text heuristics and
    ordered per page by unstructured's XY-cut sort, as `partition_pdf(strategy="fast")` does.
    Returns the elements and the number of pages.
    """
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import CoordinatesMetadata, ElementMetadata
    from unstructured.partition.pdf_image.pdfminer_utils import (
        open_pdfminer_pages_generator,
        rect_to_bbox,
    )
    from unstructured.partition.text import element_from_text
    from unstructured.partition.utils.config import env_config
    from unstructured.partition.utils.constants import SORT_MODE_BASIC, SORT_MODE_XY_CUT
    from unstructured.partition.utils.sorting import sort_page_elements

    elements: list[Element] = []
    page_count = 0
    threshold = env_config.PDF_CHAR_DUPLICATE_THRESHOLD
    for page_number, (_, layout) in enumerate(open_pdfminer_pages_generator(io.BytesIO(data)), start=1):
        page_count = page_number
        system = PixelSpace(width=layout.width, height=layout.height)
        page_elements: list[Element] = []
        for box in layout:
            text = _box_text(box, threshold)
            if not text.strip():
                continue
            # Letter-spaced words are joined now, while the wider gaps between words still show.
            joined = join_letter_spaced(text)
            x1, y1, x2, y2 = rect_to_bbox(box.bbox, layout.height)
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            element = element_from_text(
                re.sub(r"\s+", " ", joined or text).strip(), coordinates=points, coordinate_system=system
            )
            element.metadata = ElementMetadata(
                page_number=page_number,
                coordinates=CoordinatesMetadata(points=points, system=system),
            )
            if joined is not None:
                setattr(element.metadata, JOINED, True)
            page_elements.append(element)
        ordered = sort_page_elements(page_elements, SORT_MODE_BASIC)
        elements.extend(sort_page_elements(ordered, SORT_MODE_XY_CUT))
    return elements, page_count


def _box_text(box: Any, threshold: float) -> str:
    from pdfminer.layout import LTContainer
    from unstructured.partition.pdf_image.pdfminer_utils import get_text_with_deduplication

    if hasattr(box, "get_text"):
        return str(get_text_with_deduplication(box, threshold))
    if isinstance(box, LTContainer):  # figures may hold text boxes of their own
        return "\n".join(_box_text(child, threshold) for child in box)
    return ""


def route_pdfs_to_text_layer_partitioner() -> None:
    """Make `unstructured.partition.auto` (used for email attachments) read PDFs with ours."""
    from unstructured.file_utils.model import FileType
    from unstructured.partition.auto import _PartitionerLoader

    def partition_attached_pdf(
        *, file: io.BytesIO | None = None, metadata_filename: str | None = None, **_: Any
    ) -> list[Element]:
        if file is None:
            raise UnsupportedFileType("PDF attachments are read from memory only")
        elements = partition_pdf(file.read())[0]
        for element in elements:
            element.metadata.filename = metadata_filename
        return elements

    _PartitionerLoader._partitioners[FileType.PDF] = partition_attached_pdf


def refuse_pdf_reference_loops() -> None:
    """Make pdfminer fail on an object that refers to itself, instead of resolving it forever.

    pdfminer's `resolve1` follows references for as long as they lead to another reference, so
    `2 0 obj 2 0 R endobj` (or a longer loop) keeps a parse busy until its time limit.
    """
    from pdfminer.pdftypes import PDFObjRef

    resolve_once = PDFObjRef.resolve

    def resolve(self: PDFObjRef, default: object = None) -> Any:
        seen = {self.objid}
        value = resolve_once(self, default)
        while isinstance(value, PDFObjRef):
            if value.objid in seen:
                raise CorruptFile(
                    f"could not parse the PDF file: its object {self.objid} refers to itself in a loop"
                )
            seen.add(value.objid)
            value = resolve_once(value, default)
        return value

    PDFObjRef.resolve = resolve  # type: ignore[method-assign]
