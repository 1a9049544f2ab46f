"""A list as operators and finance download it: CSV that opens right in Chinese Excel, and XLSX.

The CSV is UTF-8 with a byte-order mark (without it Chinese Excel guesses GBK and garbles
every character) and CRLF line ends. A text cell that a spreadsheet would run as a formula
(`=`, `+`, `-`, `@`, a tab or a carriage return first) is written with a leading apostrophe,
so a buyer's contact or a note cannot become a formula in finance's spreadsheet; numbers
stay numbers.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

Cell = str | int | date | datetime | None
Format = Literal["csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_SHEET_NAME_LIMIT = 31


@dataclass(frozen=True)
class Table:
    """A titled header and its rows; the title names the XLSX sheet and the downloaded file."""

    title: str
    header: Sequence[str]
    rows: Iterable[Sequence[Cell]]


def text_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_cell(value: Cell) -> str | int:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return text_safe(value)
    return value


def _xlsx_cell(value: Cell) -> str | int | date | datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        return text_safe(value)
    return value


def as_csv(table: Table) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow([_csv_cell(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def as_xlsx(table: Table) -> bytes:
    """A one-sheet workbook, header in bold and frozen; times as Excel times (in the zone the caller chose)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet(_sheet_name(table.title))
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for name in table.header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in table.rows:
        sheet.append([_xlsx_cell(cell) for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def encode(table: Table, fmt: Format) -> bytes:
    return as_csv(table) if fmt == "csv" else as_xlsx(table)


def _sheet_name(title: str) -> str:
    cleaned = "".join(" " if char in "[]:*?/\\" else char for char in title).strip()
    return (cleaned or "Sheet")[:XLSX_SHEET_NAME_LIMIT]
