"""Write the binary example documents: the travel and expenses policy (DOCX), the leave policy (PDF).

The Markdown and HTML examples are written by hand; these two are generated so that their text
stays readable here. The output is byte-for-byte the same on every run (fixed dates, fixed ids),
so running this again does not give `quire demo` a new version to ingest.

    .venv/bin/python examples/make_examples.py
"""

from __future__ import annotations

import io
import textwrap
import zipfile
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_TIME = (2026, 1, 5, 9, 0, 0)

TRAVEL_TITLE = "Travel and expenses policy"
TRAVEL: list[tuple[str, list[str]]] = [
    (
        "",
        [
            "This policy applies to everyone who travels or spends money on behalf of Fernhollow "
            "Instruments. The finance team owns it.",
        ],
    ),
    (
        "Booking travel",
        [
            "- All business travel must be booked through the travel desk, on extension 210.",
            "- Flights shorter than six hours must be booked in economy class.",
            "- Trains are preferred for journeys of under four hours.",
        ],
    ),
    (
        "Allowances",
        [
            "A per diem is a fixed daily amount that covers meals and small costs without receipts.",
            "The per diem is 45 euros a day in the home country and 60 euros a day abroad.",
            "Hotel rooms cost at most 140 euros a night, or 190 euros a night in capital cities.",
        ],
    ),
    (
        "Claims",
        [
            "- Expense claims must be submitted in the Expenses app within 30 days of the expense.",
            "- A receipt is required for every item over 20 euros.",
            "- Mileage in a private car is paid at 30 cents per kilometre.",
        ],
    ),
]
ALLOWANCES = [
    ("Where", "Per diem", "Hotel, per night"),
    ("Home country", "45 euros", "140 euros"),
    ("Abroad", "60 euros", "140 euros"),
    ("Capital cities", "60 euros", "190 euros"),
]

LEAVE_TITLE = "Leave Policy"
LEAVE: list[tuple[str, list[str]]] = [
    (
        "",
        [
            "This policy covers leave other than annual holiday, which the employee handbook "
            "describes. Requests go through the Leave app and are answered within five working days.",
        ],
    ),
    (
        "Parental Leave",
        [
            "Parental leave is 20 weeks at full pay for every parent, whether a child is born or adopted.",
            "Parental leave must be requested at least eight weeks before it starts.",
        ],
    ),
    (
        "Compassionate Leave",
        [
            "Compassionate leave is up to five days of paid leave when someone close to you dies or "
            "is seriously ill. It needs no notice and no evidence.",
        ],
    ),
    (
        "Study Leave",
        [
            "Study leave is five days a year for courses related to your work.",
            "Study leave needs to be agreed with your team lead before the course is booked.",
        ],
    ),
    (
        "Unpaid Leave",
        [
            "Unpaid leave of up to three months is possible after two years of service.",
        ],
    ),
]


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    properties = document.core_properties
    properties.title = TRAVEL_TITLE
    properties.author = "Fernhollow Instruments"
    properties.created = properties.modified = datetime(*FIXED_TIME)
    properties.last_modified_by = "Fernhollow Instruments"
    properties.revision = 1
    document.add_heading(TRAVEL_TITLE, level=1)
    for heading, paragraphs in TRAVEL:
        if heading:
            document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            if paragraph.startswith("- "):
                document.add_paragraph(paragraph[2:], style="List Bullet")
            else:
                document.add_paragraph(paragraph)
        if heading == "Allowances":
            table = document.add_table(rows=len(ALLOWANCES), cols=3)
            table.style = "Table Grid"
            for row, cells in zip(table.rows, ALLOWANCES, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = text
    out = io.BytesIO()
    document.save(out)
    path.write_bytes(_fixed_zip(out.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with every entry dated FIXED_TIME, so the bytes do not change between runs."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, source.read(info.filename))
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(path: Path) -> None:
    """A one-page PDF with a real text layer: Helvetica, a title, headings and wrapped paragraphs."""
    import pikepdf

    def font(name: str) -> pikepdf.Dictionary:
        return pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name(name),
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )

    ops = ["BT"]
    y = 700.0

    def line(text: str, face: str, size: float, advance: float) -> None:
        nonlocal y
        ops.append(f"/{face} {size} Tf 1 0 0 1 72 {y:.1f} Tm ({_escape(text)}) Tj")
        y -= advance

    line(LEAVE_TITLE, "F2", 20, 34)
    for heading, paragraphs in LEAVE:
        if heading:
            y -= 6
            line(heading, "F2", 13, 20)
        for paragraph in paragraphs:
            for wrapped in textwrap.wrap(paragraph, 88):
                line(wrapped, "F1", 10.5, 14)
            y -= 8
    ops.append("ET")

    document = pikepdf.new()
    document.docinfo["/Title"] = LEAVE_TITLE
    document.docinfo["/Author"] = "Fernhollow Instruments"
    page = document.add_blank_page(page_size=(612, 792))
    page.obj.Resources = pikepdf.Dictionary(
        Font=pikepdf.Dictionary(F1=font("/Helvetica"), F2=font("/Helvetica-Bold"))
    )
    page.obj.Contents = document.make_stream("\n".join(ops).encode("cp1252"))
    document.save(path, deterministic_id=True)


def main() -> None:
    make_docx(HERE / "travel-and-expenses.docx")
    make_pdf(HERE / "leave-policy.pdf")
    for name in ("travel-and-expenses.docx", "leave-policy.pdf"):
        print(f"wrote examples/{name} ({(HERE / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
