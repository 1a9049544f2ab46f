"""Lists download as CSV that Chinese Excel opens and as XLSX that reads back cell for cell."""

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from kaquan.kit.tables import Cell, Table, as_csv, as_xlsx, encode

ROWS: list[list[Cell]] = [
    ["KQ-1", "已支付 paid", 1990, '=HYPERLINK("x")', datetime(2026, 12, 5, 8, 30, tzinfo=UTC)],
    ["KQ-2", "已退款 refunded", -500, None, datetime(2026, 12, 5, 9, 0, tzinfo=UTC)],
]
TABLE = Table("订单 Orders", ["单号", "状态", "金额（分）", "联系方式", "下单时间"], ROWS)


def test_the_csv_starts_with_a_byte_order_mark_and_keeps_chinese_intact() -> None:
    data = as_csv(TABLE)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["单号", "状态", "金额（分）", "联系方式", "下单时间"]
    assert rows[1][1] == "已支付 paid"
    assert rows[1][4] == "2026-12-05 08:30:00"
    assert rows[2][2] == "-500"
    assert rows[2][3] == ""
    assert data.count(b"\r\n") == 3


def test_a_cell_a_spreadsheet_would_run_is_written_as_text_in_both_formats() -> None:
    rows = list(csv.reader(io.StringIO(as_csv(TABLE).decode("utf-8-sig"))))
    assert rows[1][3] == '\'=HYPERLINK("x")'
    sheet = load_workbook(io.BytesIO(as_xlsx(TABLE))).active
    assert sheet is not None
    assert sheet["D2"].value == '\'=HYPERLINK("x")'
    assert sheet["D2"].data_type == "s"


def test_the_xlsx_reads_back_with_numbers_as_numbers_and_times_as_times() -> None:
    book = load_workbook(io.BytesIO(encode(TABLE, "xlsx")))
    sheet = book.active
    assert sheet is not None
    assert sheet.title == "订单 Orders"
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == ["单号", "状态", "金额（分）", "联系方式", "下单时间"]
    assert values[1][2] == 1990
    assert values[2][2] == -500
    assert values[1][4] == datetime(2026, 12, 5, 8, 30, tzinfo=UTC).replace(tzinfo=None)
    assert sheet["A1"].font.b


def test_a_title_that_excel_forbids_as_a_sheet_name_is_cleaned_and_shortened() -> None:
    sheet = load_workbook(io.BytesIO(as_xlsx(Table("a/b:c*" + "x" * 40, ["h"], [])))).active
    assert sheet is not None
    assert sheet.title == ("a b c " + "x" * 40)[:31]
