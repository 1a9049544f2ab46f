"""Any CSV or XLSX statement, read through the `ColumnMapping` finance saved for its source.

CSV is decoded strictly in the mapping's encoding; XLSX is read with openpyxl
in read-only mode, which streams the sheet's XML row by row, and a line's
number is its sheet row. Spreadsheet cells arrive typed: numbers as int or
float (a float amount is read through its shortest decimal text, so 12.34
stays 12.34 and 12.345 is refused like its text would be), times as datetime.
"""

import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, tzinfo
from typing import IO, Final
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.mapping import ISO, ColumnMapping
from kaquan.statements.reading import (
    Columns,
    Rows,
    currency_of,
    detect_encoding,
    header_name,
    is_zip,
    minor_units,
    seekable,
    text_lines,
)
from kaquan.statements.rowwise import RowStatement

Cell = object  # text from a CSV; str, int, float, Decimal, datetime or None from a spreadsheet
_GROUPED: Final = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")


def read(stream: IO[bytes], mapping: ColumnMapping) -> RowStatement:
    zipped, stream = is_zip(stream)
    records = _xlsx_records(stream, mapping) if zipped else _csv_records(stream, mapping)
    header_line, header_cells = _header(records, mapping)
    names = [header_name(_text(cell)) for cell in header_cells]
    wanted = mapping.columns()
    columns = Columns(
        names, line=header_line, required=[header_name(name) for name in wanted.values()], what="statement"
    )
    index = {key: columns.index(header_name(name)) for key, name in wanted.items()}
    zone = ZoneInfo(mapping.time_zone)
    kinds = {value.strip(): kind for value, kind in mapping.kinds.items()}
    header = StatementHeader(
        source=f"generic:{mapping.name}",
        account="",
        period_start=None,
        period_end=None,
        currency=mapping.default_currency.upper(),
    )

    def convert(line: int, cells: list[Cell]) -> StatementLine | None:
        if all(cell is None or cell == "" for cell in cells):
            return None  # spreadsheets keep formatted empty rows
        code, digits = mapping.default_currency.upper(), None
        if "currency" in index and _text(cells[index["currency"]]):
            code, digits = currency_of(_text(cells[index["currency"]]), line=line, column=wanted["currency"])
        if digits is None:
            code, digits = currency_of(code, line=line, column=wanted.get("currency", "default_currency"))
        value = _amount(cells[index["amount"]], mapping, digits, line, wanted["amount"])
        fee = _amount(cells[index["fee"]], mapping, digits, line, wanted["fee"]) if "fee" in index else 0
        kind: LineKind = mapping.default_kind
        status = ""
        if "kind" in index:
            status = _text(cells[index["kind"]])
            found = kinds.get(status)
            if found is None:
                raise StatementRejected(
                    f"{status!r} is none of the kinds the mapping knows ({', '.join(kinds)})",
                    line=line,
                    column=wanted["kind"],
                )
            kind = found
        elif value < 0:
            if not mapping.negative_is_refund:
                raise StatementRejected(
                    "a negative amount, and the mapping does not say it is a refund", line=line, column=wanted["amount"]
                )
            kind = "refund"
        identity = _text(cells[index["identity"]])
        if not identity:
            raise StatementRejected("a row without its id", line=line, column=wanted["identity"])

        def text(key: str) -> str:
            return _text(cells[index[key]]) if key in index else ""

        return StatementLine(
            line,
            identity,
            kind,
            _time(cells[index["occurred_at"]], mapping, zone, line, wanted["occurred_at"]),
            abs(value),
            abs(fee),
            code,
            text("merchant_ref"),
            text("counterparty_ref") or identity,
            text("refund_ref"),
            status,
            text("description"),
        )

    return RowStatement(header, columns, records, convert, ragged=zipped)


def _csv_records(stream: IO[bytes], mapping: ColumnMapping) -> Iterator[tuple[int, list[Cell]]]:
    encoding = mapping.encoding
    if encoding == "auto":
        encoding, stream = detect_encoding(stream)
    for line, cells in Rows(text_lines(stream, encoding)):
        yield line, list(cells)


def _xlsx_records(stream: IO[bytes], mapping: ColumnMapping) -> Iterator[tuple[int, list[Cell]]]:
    try:
        workbook = load_workbook(seekable(stream), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as error:
        raise StatementRejected(f"the file is not an XLSX workbook ({type(error).__name__})") from None
    try:
        if mapping.sheet is not None and mapping.sheet not in workbook.sheetnames:
            raise StatementRejected(f"the workbook has no sheet {mapping.sheet!r}")
        sheet = workbook[mapping.sheet] if mapping.sheet is not None else workbook.worksheets[0]
        if not isinstance(sheet, ReadOnlyWorksheet):
            raise StatementRejected(f"the sheet {sheet.title!r} holds a chart, not rows")
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, list(row)
    finally:
        workbook.close()


def _header(records: Iterator[tuple[int, list[Cell]]], mapping: ColumnMapping) -> tuple[int, list[Cell]]:
    for line, cells in records:
        if line == mapping.header_row:
            return line, cells
        if line > mapping.header_row:
            raise StatementRejected(f"the header row {mapping.header_row} is blank", line=mapping.header_row)
    raise StatementRejected(f"the file is empty or ends before its header row {mapping.header_row}")


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # a long id a spreadsheet kept as a number
    return str(cell).strip()


def _amount(cell: Cell, mapping: ColumnMapping, digits: int, line: int, column: str) -> int:
    if isinstance(cell, bool | datetime | date):
        raise StatementRejected(f"{cell!r} is not an amount", line=line, column=column)
    if isinstance(cell, int):
        text = str(cell)
    elif isinstance(cell, float):
        text = repr(cell)
    else:
        text = _text(cell)
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
    value = minor_units(text, 0 if mapping.amount_unit == "fen" else digits)
    if isinstance(cell, float) and mapping.amount_unit == "fen" and cell.is_integer():
        value = int(cell)
    if value is None:
        unit = "a whole number of fen" if mapping.amount_unit == "fen" else f"an amount with at most {digits} decimals"
        raise StatementRejected(f"{text!r} is not {unit}", line=line, column=column)
    return value


def _time(cell: Cell, mapping: ColumnMapping, zone: tzinfo, line: int, column: str) -> datetime:
    if isinstance(cell, datetime):
        moment = cell
    elif isinstance(cell, date):
        moment = datetime(cell.year, cell.month, cell.day)  # noqa: DTZ001 - the zone is attached below
    else:
        text = _text(cell)
        try:
            if mapping.date_format == ISO:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            else:
                moment = datetime.strptime(text, mapping.date_format)  # noqa: DTZ007 - the zone is attached below
        except ValueError:
            raise StatementRejected(
                f"{text!r} is not a time written as {mapping.date_format}", line=line, column=column
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
