"""The worklist as finance reads it: each class in words (zh-CN, English), amounts as ¥12.34, CSV for Excel.

The CSV is UTF-8 with a byte-order mark, which Chinese Excel needs to open it
without garbling; times are Beijing time, the zone finance works in.
"""

import csv
import io
from collections.abc import Iterable

from kaquan.kit.money import Money
from kaquan.reconciliation.days import BEIJING
from kaquan.reconciliation.worklist import DifferenceView

BOM = "\ufeff"
CLASS_WORDS: dict[str, tuple[str, str]] = {
    "matched": ("已匹配", "matched"),
    "missing_in_statement": ("对账单缺失", "missing in the statement"),
    "missing_in_kaquan": ("系统缺失", "missing in kaquan"),
    "amount_mismatch": ("金额不符", "amount mismatch"),
    "duplicate_line": ("对账单重复行", "duplicate statement line"),
    "refund_missing_in_statement": ("退款对账单缺失", "refund missing in the statement"),
    "refund_missing_in_kaquan": ("退款系统缺失", "refund missing in kaquan"),
    "refund_amount_mismatch": ("退款金额不符", "refund amount mismatch"),
    "status_mismatch": ("状态不符", "status mismatch"),
    "fee_mismatch": ("手续费不符", "fee mismatch"),
    "timing": ("跨日差异（待次日）", "timing difference"),
}
STATE_WORDS: dict[str, tuple[str, str]] = {
    "open": ("待处理", "open"),
    "annotated": ("已备注", "annotated"),
    "resolved": ("已处理", "resolved"),
    "auto": ("无需处理", "needs nobody"),
}
RESOLUTION_WORDS: dict[str, tuple[str, str]] = {
    "accept_statement": ("以对账单为准", "accept the statement"),
    "write_off": ("核销差额", "write off"),
    "no_action": ("无需调整", "no action"),
}
CSV_HEADER = (
    "编号 id",
    "业务日期 day",
    "来源 source",
    "类别 class",
    "状态 state",
    "kaquan金额 kaquan",
    "对账单金额 statement",
    "kaquan手续费 kaquan fee",
    "对账单手续费 statement fee",
    "商户单号 merchant ref",
    "渠道单号 counterparty ref",
    "对账单时间 statement time",
    "备注 note",
    "处理方式 resolution",
    "处理人 decided by",
)


def money(minor: int | None, currency: str) -> str:
    """¥19.90 for yuan, as finance reads it; other currencies by their code; "" for a side that is missing."""
    if minor is None:
        return ""
    shown = Money(minor, currency).format()
    return shown.replace("CNY ", "¥") if currency == "CNY" else shown


def words(table: dict[str, tuple[str, str]], key: str | None) -> str:
    """ "中文 English" for a code, or the code itself where it has no words."""
    if key is None:
        return ""
    zh, en = table.get(key, (key, key))
    return f"{zh} {en}"


def _text(value: str) -> str:
    """A free-text cell Excel must not take for a formula (a note starting with "=" stays text)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(item: DifferenceView) -> list[str]:
    at = item.line_occurred_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if item.line_occurred_at else ""
    return [
        str(item.id),
        item.business_day.isoformat(),
        item.source,
        words(CLASS_WORDS, item.class_),
        words(STATE_WORDS, item.state),
        money(item.expected_minor, item.currency),
        money(item.found_minor, item.currency),
        money(item.expected_fee_minor, item.currency),
        money(item.found_fee_minor, item.currency),
        _text(item.record_ref or item.line_merchant_ref or ""),
        _text(item.line_counterparty_ref or ""),
        at,
        _text(item.note),
        words(RESOLUTION_WORDS, item.resolution),
        _text(item.decided_by or ""),
    ]


def csv_text(rows: Iterable[list[str]], *, header: bool = False) -> str:
    """Rows as CSV text; with `header`, the BOM and the header row first."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        out.write(BOM)
        writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue()
