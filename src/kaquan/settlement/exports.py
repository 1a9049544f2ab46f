"""A statement as CSV (UTF-8 with BOM, for Chinese Excel), XLSX and PDF; Chinese labels first, English beside.

Amounts are shown as ¥1,234.56 (the currency's symbol), times in the rule's time zone.
The PDF uses reportlab's built-in CID font STSong-Light: it needs no font file, so
Chinese renders on a machine with no fonts installed.
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from kaquan.settlement.models import SettlementLine, SettlementRun
from kaquan.settlement.statement import figures_of

SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$"}
KINDS = {
    "order": "销售 sale",
    "refund": "退款 refund",
    "topup": "充值 top-up",
    "adjustment": "调整 adjustment",
    "payout": "结算付款 payout",
}
SUMMARY = (
    ("opening", "期初余额 Opening balance"),
    ("sales", "销售 Sales"),
    ("refunds", "退款 Refunds"),
    ("fees", "手续费 Fees"),
    ("commissions", "返佣 Commissions"),
    ("top_ups", "充值 Top-ups"),
    ("adjustments", "调整 Adjustments"),
    ("payouts", "结算付款 Payouts"),
    ("closing", "期末余额 Closing balance"),
)
DETAILS = (
    ("net_settled", "本期结算净销售额 Net sales settled"),
    ("held_sales", "暂扣销售额 Sales held back"),
    ("tier_rate_bp", "返佣费率 Commission rate (bp)"),
    ("carried_in", "上期结转 Carried in"),
    ("carried_out", "结转下期 Carried to next period"),
)
LINE_HEADERS = (
    "时间 Time",
    "类型 Kind",
    "订单号 Order no.",
    "金额 Amount",
    "手续费 Fee",
    "余额变动 Balance change",
    "结算 Settled",
)


def money(amount_minor: int, currency: str) -> str:
    """¥1,234.56 (minus before the symbol), from fen, without floats."""
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{units:,}.{cents:02d}"


@dataclass(frozen=True)
class Sheet:
    """The statement as rows of text, shared by every format."""

    title: str
    heading: list[tuple[str, str]]
    summary: list[tuple[str, str]]
    line_rows: Sequence[tuple[str, ...]]


def _local(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def sheet(run: SettlementRun, lines: list[SettlementLine], zone: str) -> Sheet:
    figures = figures_of(run.figures).as_dict()
    cur = run.currency
    status = "已确认 confirmed" if run.status == "confirmed" else "草稿 draft"
    heading = [
        ("结算单 Statement", str(run.id)),
        ("对象 Counterparty", run.counterparty),
        ("结算期 Period", f"{run.first_day} .. {run.last_day} ({zone})"),
        ("状态 Status", status),
        ("币种 Currency", cur),
    ]
    summary = [(label, money(figures[key], cur)) for key, label in SUMMARY]
    summary += [
        (label, str(figures[key]) if key == "tier_rate_bp" else money(figures[key], cur)) for key, label in DETAILS
    ]
    # A top-up's reference is stored as `<agent>:<reference>`; the statement shows what finance entered.
    own_prefix = run.counterparty.removeprefix("agent:") + ":" if run.counterparty.startswith("agent:") else None
    rows = [
        (
            _local(line.at, zone),
            KINDS.get(line.kind, line.kind),
            line.order_no or (line.reference.removeprefix(own_prefix) if own_prefix else line.reference),
            money(line.gross_minor, cur) if line.kind in ("order", "refund") else "",
            money(line.fee_minor, cur) if line.fee_minor else "",
            money(line.amount_minor, cur),
            ("是 yes" if line.settled else "暂扣 held") if line.in_period else "上期释放 released",
        )
        for line in lines
    ]
    return Sheet(f"结算单 Settlement statement {run.id}", heading, summary, rows)


def _spreadsheet_safe(text: str) -> str:
    """A cell that a spreadsheet would run as a formula is written as text."""
    amount = text[:1] == "-" and text[1:2] in tuple(symbol[0] for symbol in SYMBOLS.values())
    return "'" + text if text[:1] in ("=", "+", "@", "-") and not amount else text


def as_csv(data: Sheet) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for label, value in data.heading + data.summary:
        writer.writerow([label, _spreadsheet_safe(value)])
    writer.writerow([])
    writer.writerow(LINE_HEADERS)
    for row in data.line_rows:
        writer.writerow([_spreadsheet_safe(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(data: Sheet) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook(write_only=False)
    summary = book.create_sheet("结算单", 0)
    book.remove(book.worksheets[1])
    for label, value in data.heading + data.summary:
        summary.append([label, _spreadsheet_safe(value)])
    for row in summary.iter_rows(max_col=1):
        row[0].font = Font(bold=True)
    summary.column_dimensions["A"].width = 34
    summary.column_dimensions["B"].width = 36
    details = book.create_sheet("明细")
    details.append(list(LINE_HEADERS))
    for cell in details[1]:
        cell.font = Font(bold=True)
    for row in data.line_rows:
        details.append([_spreadsheet_safe(cell) for cell in row])
    for column, width in zip("ABCDEFG", (20, 16, 24, 16, 14, 18, 14), strict=True):
        details.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_pdf(data: Sheet) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    font = "STSong-Light"
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), title=data.title, author="kaquan")
    grid = TableStyle(
        [
            ("FONTNAME", (0, 0), (-1, -1), font),
            ("FONTSIZE", (0, 0), (-1, -1), 9),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]
    )
    header_row = TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)])
    story = [
        Paragraph(data.title, ParagraphStyle("title", fontName=font, fontSize=16, leading=22)),
        Spacer(1, 8),
        Table([list(pair) for pair in data.heading + data.summary], style=grid, hAlign="LEFT"),
        Spacer(1, 12),
        Table([list(LINE_HEADERS), *[list(row) for row in data.line_rows]], style=grid, hAlign="LEFT", repeatRows=1),
    ]
    story[-1].setStyle(header_row)
    doc.build(story)
    return out.getvalue()


FORMATS = {
    "csv": ("text/csv; charset=utf-8", as_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", as_xlsx),
    "pdf": ("application/pdf", as_pdf),
}
