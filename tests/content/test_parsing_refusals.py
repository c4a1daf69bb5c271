"""Refusals on their own, in this process: each file Quire cannot read gets its typed reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from unstructured.file_utils.model import FileType

from quire.content.parsing import CorruptFile, EncryptedFile, ParseFailure, UnsupportedFileType
from quire.content.parsing.refusals import (
    MAX_DELIMITED_LINE_BYTES,
    corrupt_reason,
    refuse_encrypted,
    refuse_long_lines,
    refuse_unsupported,
)
from tests.content import fixtures


@pytest.mark.parametrize("file_type", [FileType.PNG, FileType.JPG, FileType.TIFF])
def test_images_are_refused_because_they_would_need_ocr(file_type: FileType) -> None:
    with pytest.raises(UnsupportedFileType, match="image without a text layer; Quire does not run OCR"):
        refuse_unsupported(file_type, file_type.mime_type)


@pytest.mark.parametrize("file_type", [FileType.DOC, FileType.PPT])
def test_legacy_office_files_are_refused_with_the_format_to_save_in(file_type: FileType) -> None:
    with pytest.raises(UnsupportedFileType, match=r"LibreOffice.*\(\.docx, \.pptx\)"):
        refuse_unsupported(file_type, file_type.mime_type)


@pytest.mark.parametrize("file_type", [FileType.UNK, FileType.ZIP, FileType.WAV])
def test_types_without_a_partitioner_are_unsupported(file_type: FileType) -> None:
    with pytest.raises(UnsupportedFileType, match="are not supported") as caught:
        refuse_unsupported(file_type, "application/x-something")

    assert (caught.value.code, caught.value.status) == ("unsupported", "unsupported")


@pytest.mark.parametrize(
    "file_type", [FileType.PDF, FileType.DOCX, FileType.XLS, FileType.TXT, FileType.CSV, FileType.EML]
)
def test_readable_types_pass(file_type: FileType) -> None:
    refuse_unsupported(file_type, file_type.mime_type)


def test_a_pdf_that_needs_a_password_is_encrypted() -> None:
    with pytest.raises(EncryptedFile, match="protected by a password"):
        refuse_encrypted(fixtures.pdf([["Secret figures"]], password="s3cret"), FileType.PDF)


def test_a_pdf_with_only_an_owner_password_passes() -> None:
    refuse_encrypted(fixtures.pdf([["Printing is restricted"]], password=""), FileType.PDF)


def test_a_pdf_pypdf_cannot_read_is_corrupt_not_encrypted() -> None:
    data = fixtures.pdf([["Cut in half"]])

    with pytest.raises(CorruptFile, match=r"could not parse the PDF file: .+"):
        refuse_encrypted(data[: len(data) // 2], FileType.PDF)


@pytest.mark.parametrize(
    ("make", "file_type"), [(fixtures.docx, FileType.DOCX), (fixtures.xlsx, FileType.XLSX)]
)
def test_an_office_file_that_needs_a_password_is_encrypted(
    make: Callable[[], bytes], file_type: FileType
) -> None:
    encrypted = fixtures.encrypt_office(make(), "s3cret")

    with pytest.raises(EncryptedFile, match=f"the {file_type.name} file is protected by a password"):
        refuse_encrypted(encrypted, file_type)


def test_an_outlook_message_is_an_ole_file_but_not_an_encrypted_one() -> None:
    refuse_encrypted(fixtures.msg(), FileType.MSG)
    refuse_encrypted(fixtures.docx(), FileType.DOCX)


def test_a_csv_line_too_long_to_keep_is_refused_with_its_line_number() -> None:
    long_line = b"x" * (MAX_DELIMITED_LINE_BYTES + 1)
    data = b"name,city\n" + long_line + b"\nBob,Berlin\n"

    with pytest.raises(ParseFailure, match=r"line 2 of the CSV file is 3\.0 MB long") as caught:
        refuse_long_lines(data, FileType.CSV)

    assert caught.value.code == "parse_failed"
    refuse_long_lines(data, FileType.TXT)  # only tables lose a long cell
    refuse_long_lines(b"x" * MAX_DELIMITED_LINE_BYTES, FileType.TSV)


def test_a_parsers_reason_loses_its_python_and_libxml2_internals() -> None:
    from io import BytesIO

    buffer = BytesIO()
    assert corrupt_reason(ValueError(f"{buffer!r} is not a zip file")) == "the file is not a zip file"
    assert corrupt_reason(ValueError("Opening and ending tag mismatch (<string>, line 3)")) == (
        "Opening and ending tag mismatch"
    )
    assert corrupt_reason(KeyError()) == "KeyError"
    assert "refers to itself in a loop" in corrupt_reason(RecursionError("maximum recursion depth"))
