"""kaquan's marketplace settlement export: what a marketplace store says it settled, one row per money movement.

kaquan defines this format (docs/statements.md) for the stores of the
marketplace adapter (docs/channels.md): finance exports the store's settlement
detail from the marketplace's seller console into these columns. Columns, by
name: 结算流水号 (the marketplace's id for the movement), 订单号 (the
marketplace order id, which kaquan keeps as the order's idempotency key),
类型, 金额（元）, 佣金（元） (optional), 发生时间 (Beijing time), 币种
(optional, CNY). ASCII brackets in names are accepted. The file is GBK or
UTF-8 (with or without a BOM): the caller says which, or asks for detection.
"""

from typing import IO, Final

from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import (
    BEIJING,
    Columns,
    LocalTimes,
    Rows,
    amount,
    currency_of,
    detect_encoding,
    text_lines,
)
from kaquan.statements.rowwise import RowStatement, first_record

REQUIRED: Final = ("结算流水号", "订单号", "类型", "金额（元）", "发生时间")
KINDS: Final[dict[str, LineKind]] = {
    "订单收入": "payment",
    "退款": "refund",
    "平台佣金": "fee",
    "服务费": "fee",
    "提现": "payout",
    "结算打款": "payout",
}
TIME_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M")


def read(stream: IO[bytes], *, store: str | None, encoding: str | None) -> RowStatement:
    if encoding is None:
        encoding, stream = detect_encoding(stream)
    records = iter(Rows(text_lines(stream, encoding)))
    line, cells = first_record(records, "a marketplace settlement export")
    columns = Columns(cells, line=line, required=REQUIRED, what="marketplace settlement export")
    at = columns.index
    i_id, i_order, i_type, i_amount, i_time = (at(name) for name in REQUIRED)
    i_fee = columns.optional("佣金（元）")
    i_currency = columns.optional("币种")
    times = LocalTimes(BEIJING, formats=TIME_FORMATS)
    store = store or ""
    header = StatementHeader(
        source=f"marketplace:{store}" if store else "marketplace",
        account=store,
        period_start=None,
        period_end=None,
        currency="CNY",
    )

    def convert(line: int, raw: list[str]) -> StatementLine:
        cells = [cell.strip() for cell in raw]
        code, digits = "CNY", 2
        if i_currency is not None and cells[i_currency]:
            code, digits = currency_of(cells[i_currency], line=line, column="币种")
        printed_type = cells[i_type]
        kind = KINDS.get(printed_type)
        if kind is None:
            raise StatementRejected(
                f"unknown 类型 {printed_type!r} (known: {', '.join(KINDS)})", line=line, column="类型"
            )
        identity = cells[i_id]
        if not identity:
            raise StatementRejected("a row without its 结算流水号", line=line, column="结算流水号")
        fee = (
            amount(cells[i_fee], line=line, column="佣金（元）", digits=digits)
            if i_fee is not None and cells[i_fee]
            else 0
        )
        return StatementLine(
            line,
            identity,
            kind,
            times(cells[i_time], line=line, column="发生时间"),
            abs(amount(cells[i_amount], line=line, column="金额（元）", digits=digits)),
            abs(fee),
            code,
            cells[i_order],
            identity,
            "",
            printed_type,
            "",
        )

    return RowStatement(header, columns, records, convert)
