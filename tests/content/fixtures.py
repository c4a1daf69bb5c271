"""Documents for the parsing tests, made in memory from installed libraries, without the network.

Each function returns the bytes of one small file. PDFs are drawn with pikepdf, Office files with
python-docx, python-pptx and openpyxl, EPUB, ODT and RTF with the pandoc that pypandoc-binary ships,
and an Outlook .msg with the small compound-file writer below (python-oxmsg only reads them).
"""

from __future__ import annotations

import email.message
import io
import json
import random
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

# --- PDF -------------------------------------------------------------------------------------


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(
    pages: Sequence[Sequence[str]],
    *,
    password: str | None = None,
    letter_spaced: Sequence[int] = (),
    rotated: Sequence[int] = (),
) -> bytes:
    """A PDF with a text layer: one page per item, its first line as a large heading.

    With a `password` it is encrypted (AES-256); with password "" anyone may open it, but only
    its owner may change it. Pages (numbered from 1) in `letter_spaced` set their letters apart
    (the `Tc` operator, as in spaced-out headings and some typeset letters); pages in `rotated`
    run their lines up the page, as a landscape table turned on a portrait page does.
    """
    import pikepdf

    document = pikepdf.new()
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type1,
        BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )
    for number, lines in enumerate(pages, start=1):
        ops = ["BT"]
        if number in letter_spaced:
            ops.append("3 Tc")
        y = 680
        for index, line in enumerate(lines):
            size = 18 if index == 0 else 11
            matrix = f"0 1 -1 0 {792 - y} 72" if number in rotated else f"1 0 0 1 72 {y}"
            ops.append(f"/F1 {size} Tf {matrix} Tm ({_pdf_escape(line)}) Tj")
            y -= 40 if index == 0 else 30
        ops.append("ET")
        page = document.add_blank_page(page_size=(612, 792))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = document.make_stream("\n".join(ops).encode("cp1252"))
    out = io.BytesIO()
    if password is None:
        document.save(out)
    else:
        document.save(out, encryption=pikepdf.Encryption(owner="owner-" + password, user=password))
    return out.getvalue()


# --- Office ----------------------------------------------------------------------------------


def docx() -> bytes:
    """A Word document with two levels of headings, a list and a table."""
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew steadily across all regions during the quarter.")
    document.add_heading("Regional Results", level=2)
    document.add_paragraph("The northern region led the growth with new customers.")
    document.add_paragraph("Opened two offices", style="List Bullet")
    document.add_paragraph("Hired ten engineers", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for row, cells in zip(
        table.rows, [("Region", "Revenue"), ("North", "1200"), ("South", "950")], strict=True
    ):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_heading("Outlook", level=1)
    document.add_paragraph("We expect the next quarter to be similar to this one.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx() -> bytes:
    """A two-slide deck: a title slide and a slide with bullets."""
    import pptx as python_pptx

    deck = python_pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = "Product Launch Plan"
    slide.placeholders[1].text = "Prepared for the steering committee"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Milestones"
    body = slide.placeholders[1].text_frame
    body.text = "Beta release in March"
    body.add_paragraph().text = "General availability in June"
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx() -> bytes:
    """A workbook with two sheets of small tables."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Inventory"
    for row in [("Item", "Quantity"), ("Widgets", 42), ("Gadgets", 7)]:
        sheet.append(row)
    staff = workbook.create_sheet("Staff")
    for row in [("Name", "Team"), ("Alice", "Platform"), ("Bob", "Search")]:
        staff.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def encrypt_office(data: bytes, password: str) -> bytes:
    """The same OOXML file, encrypted with a password (ECMA-376 agile encryption)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def docx_bomb(inflated_mb: int) -> bytes:
    """A valid .docx whose document.xml inflates to `inflated_mb` MB from a few hundred KB."""
    source = zipfile.ZipFile(io.BytesIO(docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            if item.filename != "word/document.xml":
                bomb.writestr(item, source.read(item))
                continue
            head = (
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/'
                b'main"><w:body><w:p><w:r><w:t>'
            )
            with bomb.open(item.filename, "w", force_zip64=True) as member:
                member.write(head)
                chunk = b"A" * (1 << 20)
                for _ in range(inflated_mb):
                    member.write(chunk)
                member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return out.getvalue()


# --- Formats made with pandoc -----------------------------------------------------------------

PANDOC_MARKDOWN = """\
# Field Guide

Owls hunt mostly at night and rest during the day.

## Habitat

Barn owls prefer open country with scattered trees.
"""


def pandoc(to: str, markdown: str = PANDOC_MARKDOWN) -> bytes:
    """Markdown converted by pandoc to `to` ("epub", "odt" or "rtf")."""
    import pypandoc

    # EPUB needs a title; ODT and RTF would print it as an extra paragraph.
    extra = ["--standalone"] + (["--metadata=title:Field Guide"] if to == "epub" else [])
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / f"out.{to}"
        pypandoc.convert_text(markdown, to, format="markdown", outputfile=str(target), extra_args=extra)
        return target.read_bytes()


# --- Text formats ----------------------------------------------------------------------------

HTML = """\
<!DOCTYPE html>
<html><head><title>Travel Notes</title></head>
<body>
<h1>Travel Notes</h1>
<p>The train to Lyon leaves every hour from the main station.</p>
<h2>Prices</h2>
<table>
<tr><th>Class</th><th>Fare</th></tr>
<tr><td>First</td><td>80 EUR</td></tr>
<tr><td>Second</td><td>45 EUR</td></tr>
</table>
<ul><li>Book early for discounts</li><li>Bring your passport</li></ul>
</body></html>
"""


def long_html(sections: int = 8, paragraphs: int = 10, encoding: str = "utf-8") -> bytes:
    """A handbook in one page of HTML: sections of h2 headings and paragraphs under one h1,
    a table in the fourth section, non-ASCII text, all inside two wrapper divs, as sites write it.
    """
    blocks = ["<h1>Staff handbook</h1>", "<p>Read this handbook before your first day at the café.</p>"]
    for section in range(1, sections + 1):
        blocks.append(f"<h2>Section {section}: Überstunden und Pausen</h2>")
        for paragraph in range(1, paragraphs + 1):
            blocks.append(
                f"<p>Section {section} rule {paragraph} says what a person must do, "
                f"<b>naïvely</b> put: arrive on time, greet the customers, keep the counter clean "
                f"and write down every delivery in the ledger before noon.</p>"
            )
        if section == 4:
            blocks.append(
                "<table><tr><th>Shift</th><th>Hours</th></tr>"
                "<tr><td>Früh</td><td>6\u201314</td></tr><tr><td>Spät</td><td>14\u201322</td></tr></table>"
            )
    body = "\n".join(blocks)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="{encoding}"><title>Handbook</title></head>\n'
        f'<body>\n<div id="page"><div class="content">\n{body}\n</div></div>\n</body></html>\n'
    ).encode(encoding)


MARKDOWN = """\
# Installation Guide

Download the installer from the internal portal before you begin.

## Requirements

You need at least eight gigabytes of memory and a recent operating system.

- Python 3.11 or newer
- A working compiler

## Troubleshooting

Restart the service if the dashboard does not load after the upgrade.
"""

CSV = "Name,City,Age\nAlice,Paris,34\nBob,Berlin,41\n"
TSV = "Name\tCity\tAge\nAlice\tParis\t34\nBob\tBerlin\t41\n"
JSON = json.dumps({"title": "Release notes", "items": [{"version": "2.1", "change": "Faster search index"}]})


def eml() -> bytes:
    """A plain-text email with sender, recipient and subject."""
    message = email.message.EmailMessage()
    message["From"] = "Alice Example <alice@example.com>"
    message["To"] = "bob@example.com"
    message["Subject"] = "Budget review meeting"
    message["Date"] = "Tue, 04 Mar 2025 10:00:00 +0000"
    message["Message-ID"] = "<budget-1@example.com>"
    message.set_content(
        "Hi Bob,\n\nThe budget review meeting moves to Thursday afternoon in room four.\n\nThanks,\nAlice\n"
    )
    return message.as_bytes()


def eml_with_attachments() -> bytes:
    """An email carrying a PDF report and a photo."""
    message = email.message.EmailMessage()
    message["From"] = "carol@example.com"
    message["To"] = "dave@example.com"
    message["Subject"] = "Sales report"
    message.set_content("Please find the sales report for this quarter attached to this message.")
    report = pdf([["Sales Report", "Sales of winter tyres doubled in the northern stores this year."]])
    message.add_attachment(report, maintype="application", subtype="pdf", filename="sales.pdf")
    message.add_attachment(image("PNG"), maintype="image", subtype="png", filename="photo.png")
    return message.as_bytes()


PGP_MESSAGE = """\
-----BEGIN PGP MESSAGE-----

hQEMA3yW8lQ2Xl7bAQf/ZpT3b9kq0xN1m6Pj2fC0YtR4s8VwQk9hLr5uJ2eXo3Za
T1qv4bN8xHc7mD2wE5rK6yG9pF0sU3iO1aL4jV7nB8tC2dQ6eR9fW0gX5hY1iZ3k
0sLmN2bV4cX6zA8qW1eR3tY5uI7oP9aS0dF2gH4jK6lZ8xC0vB2nM4qW6eR8tY0u
=XyZa
-----END PGP MESSAGE-----
"""


def pgp_eml() -> bytes:
    """A PGP/MIME encrypted email (RFC 3156): its body is one armored message."""
    return (
        "From: erin@example.com\r\n"
        "To: frank@example.com\r\n"
        "Subject: Contract terms\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: application/pgp-encrypted\r\n"
        "Content-Description: PGP/MIME version identification\r\n"
        "\r\n"
        "Version: 1\r\n"
        "\r\n"
        "--b1\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        'Content-Disposition: inline; filename="encrypted.asc"\r\n'
        "\r\n" + PGP_MESSAGE.replace("\n", "\r\n") + "\r\n--b1--\r\n"
    ).encode()


def smime_eml() -> bytes:
    """An S/MIME encrypted email (RFC 8551): its body is one enveloped-data blob."""
    message = email.message.EmailMessage()
    message["From"] = "erin@example.com"
    message["To"] = "frank@example.com"
    message["Subject"] = "Contract terms"
    message.set_content(
        random_bytes(600),
        maintype="application",
        subtype="pkcs7-mime",
        params={"smime-type": "enveloped-data", "name": "smime.p7m"},
        filename="smime.p7m",
    )
    return message.as_bytes()


# --- Images ----------------------------------------------------------------------------------


def image(kind: str) -> bytes:
    """A small picture without any text layer, as "PNG" or "JPEG"."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(picture).rectangle((8, 8, 40, 30), fill="navy")
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


# --- Outlook .msg: a minimal Compound File Binary (CFB v3) writer ------------------------------

_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_FATSECT = 0xFFFFFFFD
_NOSTREAM = 0xFFFFFFFF
_SECTOR = 512
_MINI_SECTOR = 64
_MINI_CUTOFF = 4096


class _Entry:
    def __init__(self, name: str, kind: int, data: bytes = b"") -> None:
        self.name = name
        self.kind = kind  # 1 storage, 2 stream, 5 root
        self.data = data
        self.children: list[_Entry] = []
        self.sid = 0
        self.left = self.right = self.child = _NOSTREAM
        self.start = _ENDOFCHAIN
        self.size = 0


def _cfb(tree: dict[str, object]) -> bytes:
    """Write a compound file from a nested dict: str -> bytes is a stream, str -> dict a storage.

    Directory siblings form a right-leaning chain in CFB name order, a valid (if unbalanced)
    binary search tree; readers do not check the red-black colours.
    """
    root = _Entry("Root Entry", 5)
    entries = [root]

    def add(parent: _Entry, items: dict[str, object]) -> None:
        for name, value in items.items():
            if isinstance(value, dict):
                entry = _Entry(name, 1)
                add(entry, value)
            else:
                assert isinstance(value, bytes)
                entry = _Entry(name, 2, value)
            parent.children.append(entry)

    add(root, tree)

    def number(entry: _Entry) -> None:
        entry.children.sort(key=lambda e: (len(e.name), e.name.upper()))
        for child in entry.children:
            child.sid = len(entries)
            entries.append(child)
        for index, child in enumerate(entry.children):
            child.right = entry.children[index + 1].sid if index + 1 < len(entry.children) else (_NOSTREAM)
        if entry.children:
            entry.child = entry.children[0].sid
        for child in entry.children:
            number(child)

    number(root)

    # Small streams live in the mini stream, in 64-byte mini sectors.
    mini_stream = bytearray()
    mini_fat: list[int] = []
    big: list[_Entry] = []
    for entry in entries:
        if entry.kind != 2:
            continue
        entry.size = len(entry.data)
        if entry.size == 0:
            continue
        if entry.size >= _MINI_CUTOFF:
            big.append(entry)
            continue
        count = -(-entry.size // _MINI_SECTOR)
        entry.start = len(mini_fat)
        mini_fat.extend(range(entry.start + 1, entry.start + count))
        mini_fat.append(_ENDOFCHAIN)
        mini_stream += entry.data.ljust(count * _MINI_SECTOR, b"\0")

    def sectors(size: int) -> int:
        return -(-size // _SECTOR)

    directory = len(entries) * 128
    mini_fat_bytes = len(mini_fat) * 4
    runs = [
        ("mini", sectors(len(mini_stream))),
        ("minifat", sectors(mini_fat_bytes)),
        ("dir", sectors(directory)),
    ] + [(f"big{e.sid}", sectors(e.size)) for e in big]
    used = sum(n for _, n in runs)
    fat_sectors = 1
    while fat_sectors * (_SECTOR // 4) < used + fat_sectors:
        fat_sectors += 1
    assert fat_sectors <= 109
    fat = [_FREESECT] * (fat_sectors * (_SECTOR // 4))
    starts: dict[str, int] = {}
    position = 0
    for name, count in runs:
        if count == 0:
            starts[name] = _ENDOFCHAIN
            continue
        starts[name] = position
        for index in range(position, position + count - 1):
            fat[index] = index + 1
        fat[position + count - 1] = _ENDOFCHAIN
        position += count
    fat_start = position
    for index in range(fat_start, fat_start + fat_sectors):
        fat[index] = _FATSECT

    root.start = starts["mini"]
    root.size = len(mini_stream)
    for entry in big:
        entry.start = starts[f"big{entry.sid}"]

    def dir_entry(entry: _Entry) -> bytes:
        name = entry.name.encode("utf-16-le") + b"\0\0"
        assert len(name) <= 64
        return (
            name.ljust(64, b"\0")
            + struct.pack("<HBB3I", len(name), entry.kind, 1, entry.left, entry.right, entry.child)
            + b"\0" * 16
            + struct.pack("<I", 0)
            + b"\0" * 16
            + struct.pack("<IQ", entry.start, entry.size)
        )

    unused = struct.pack("<64xHBB3I", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM) + b"\0" * 48
    body = bytearray()
    body += bytes(mini_stream).ljust(sectors(len(mini_stream)) * _SECTOR, b"\0")
    minifat_raw = b"".join(struct.pack("<I", v) for v in mini_fat)
    body += minifat_raw.ljust(sectors(mini_fat_bytes) * _SECTOR, b"\xff")
    raw_dir = b"".join(dir_entry(e) for e in entries)
    body += raw_dir + unused * ((sectors(directory) * _SECTOR - len(raw_dir)) // 128)
    for entry in big:
        body += entry.data.ljust(sectors(entry.size) * _SECTOR, b"\0")
    body += b"".join(struct.pack("<I", v) for v in fat)

    difat = [fat_start + i for i in range(fat_sectors)] + [_FREESECT] * (109 - fat_sectors)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack(
            "<IIIIIIIII",
            0,
            fat_sectors,
            starts["dir"],
            0,
            _MINI_CUTOFF,
            starts["minifat"],
            sectors(mini_fat_bytes),
            _ENDOFCHAIN,
            0,
        )
        + b"".join(struct.pack("<I", v) for v in difat)
    )
    assert len(header) == _SECTOR
    return header + bytes(body)


# --- Excel 97-2003 .xls: a minimal BIFF8 workbook in the compound-file writer above ------------


def _biff(record: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", record, len(data)) + data


def _biff_string(text: str, length_format: str) -> bytes:
    """An XLUnicodeString: its length, a flags byte (1: UTF-16LE characters), the characters."""
    return struct.pack(length_format, len(text)) + b"\x01" + text.encode("utf-16-le")


def _biff_sheet(rows: Sequence[Sequence[str | float]]) -> bytes:
    columns = max(len(row) for row in rows)
    records = [
        _biff(0x0809, struct.pack("<HHHHII", 0x0600, 0x0010, 0x0DBB, 0x07CC, 0, 6)),  # BOF: sheet
        _biff(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, columns, 0)),  # DIMENSIONS
    ]
    for row_index, row in enumerate(rows):
        for column, value in enumerate(row):
            cell = struct.pack("<HHH", row_index, column, 0)
            if isinstance(value, str):
                records.append(_biff(0x0204, cell + _biff_string(value, "<H")))  # LABEL
            else:
                records.append(_biff(0x0203, cell + struct.pack("<d", value)))  # NUMBER
    records.append(_biff(0x000A))  # EOF
    return b"".join(records)


def xls(sheets: dict[str, Sequence[Sequence[str | float]]] | None = None) -> bytes:
    """An Excel 97-2003 workbook (BIFF8), one small table per sheet; xlwt is not installed.

    Only the records xlrd needs: the globals (BOF, a BOUNDSHEET per sheet, EOF), then each sheet
    (BOF, DIMENSIONS, LABEL and NUMBER cells, EOF). Numbers use XF 0, which xlrd reads as numbers.
    """
    sheets = sheets or {
        "Inventory": [("Item", "Quantity"), ("Widgets", 42.0), ("Gadgets", 7.0)],
        "Staff": [("Name", "Team"), ("Alice", "Platform"), ("Bob", "Search")],
    }
    bof = _biff(0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 6))
    bodies = [_biff_sheet(rows) for rows in sheets.values()]
    # BOUNDSHEET: the offset of the sheet's BOF in the stream, visible, a worksheet, its name.
    boundsheet_sizes = [4 + 6 + 2 + 2 * len(name) for name in sheets]
    offset = len(bof) + sum(boundsheet_sizes) + 4
    globals_ = [bof]
    for name, body in zip(sheets, bodies, strict=True):
        globals_.append(_biff(0x0085, struct.pack("<IBB", offset, 0, 0) + _biff_string(name, "<B")))
        offset += len(body)
    globals_.append(_biff(0x000A))
    return _cfb({"Workbook": b"".join(globals_) + b"".join(bodies)})


_PTYP_INT32 = 0x0003
_PTYP_TIME = 0x0040
_PTYP_STRING = 0x001F


def _properties(header: bytes, props: dict[tuple[int, int], object]) -> dict[str, object]:
    """A property storage's streams: the fixed-size table and one stream per string."""
    table = bytearray(header)
    streams: dict[str, object] = {}
    for (pid, ptyp), value in props.items():
        tag = struct.pack("<HH", ptyp, pid)
        if ptyp == _PTYP_STRING:
            assert isinstance(value, str)
            raw = value.encode("utf-16-le")
            streams[f"__substg1.0_{pid:04X}{ptyp:04X}"] = raw
            table += tag + struct.pack("<IIi", 6, len(raw) + 2, 0)
        elif ptyp == _PTYP_TIME:
            assert isinstance(value, int)
            table += tag + struct.pack("<Iq", 6, value)
        else:
            assert isinstance(value, int)
            table += tag + struct.pack("<Iii", 6, value, 0)
    streams["__properties_version1.0"] = bytes(table)
    return streams


def msg() -> bytes:
    """An Outlook message (.msg, MS-OXMSG) with a plain-text body and one recipient."""
    filetime = (1741082400 + 11644473600) * 10_000_000  # 2025-03-04 10:00 UTC
    root = _properties(
        struct.pack("<8x4I8x", 1, 0, 1, 0),
        {
            (0x001A, _PTYP_STRING): "IPM.Note",
            (0x0037, _PTYP_STRING): "Quarterly planning notes",
            (0x0039, _PTYP_TIME): filetime,
            (0x0C1A, _PTYP_STRING): "Carol Sender",
            (0x0C1F, _PTYP_STRING): "carol@example.com",
            (0x0E04, _PTYP_STRING): "Dave Receiver",
            (
                0x1000,
                _PTYP_STRING,
            ): "Hello Dave,\r\n\r\nThe planning session for next quarter is on Friday morning."
            "\r\n\r\nCarol\r\n",
            (0x340D, _PTYP_INT32): 0x00040000,  # STORE_UNICODE_OK
        },
    )
    recipient = _properties(
        struct.pack("<8x"),
        {
            (0x0C15, _PTYP_INT32): 1,  # MAPI_TO
            (0x3001, _PTYP_STRING): "Dave Receiver",
            (0x3003, _PTYP_STRING): "dave@example.com",
            (0x39FE, _PTYP_STRING): "dave@example.com",
        },
    )
    named = {
        "__substg1.0_00020102": b"",
        "__substg1.0_00030102": b"",
        "__substg1.0_00040102": b"",
    }
    return _cfb({**root, "__nameid_version1.0": named, "__recip_version1.0_#00000000": recipient})
