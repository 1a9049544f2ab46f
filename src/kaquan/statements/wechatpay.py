"""WeChat Pay's trade bill (交易账单), bill_type ALL, SUCCESS or REFUND, as downloaded.

The file is UTF-8 with a BOM (or gzip of it): a Chinese header row, the rows
with every value behind a backtick (so that Excel keeps long ids as text), then
a summary header row (总交易单数, 应结订单总金额, …) and its values. The column
order is not fixed (WeChat Pay says so), so every cell is found by its name.
SUCCESS bills lack the refund columns; REFUND bills add 退款申请时间 and
退款成功时间. Times are Beijing time. Refund rows print the fee given back as
a negative 手续费.
"""

from collections.abc import Iterator
from typing import IO, Final

from kaquan.statements.lines import StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import BEIJING, Columns, LocalTimes, Rows, amount, text_lines, ungzipped, yuan

SOURCE: Final = "wechatpay"
REQUIRED: Final = ("交易时间", "商户号", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "手续费")
REFUND_COLUMNS: Final = ("微信退款单号", "商户退款单号", "退款金额")
SUMMARY_FIRST: Final = "总交易单数"
SUMMARY_REQUIRED: Final = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")
# summary column -> the row column it adds up
_SUMMED: Final = {
    "应结订单总金额": "应结订单金额",
    "退款总金额": "退款金额",
    "充值券退款总金额": "充值券退款金额",
    "手续费总金额": "手续费",
    "订单总金额": "订单金额",
    "申请退款总金额": "申请退款金额",
}
# A revoked (撤销) micropay moved no money: it is counted by the summary but is no line.
_NO_MONEY: Final = frozenset({"REVOKED"})


class WeChatPayBill:
    """A trade bill read as it streams; the summary rows are checked against the rows before the last batch."""

    def __init__(self, stream: IO[bytes], *, account: str | None = None) -> None:
        self._rows = Rows(text_lines(ungzipped(stream), "utf-8"))
        self._records = iter(self._rows)
        first = next(self._records, None)
        if first is None:
            raise StatementRejected("the file is empty, not a WeChat Pay trade bill")
        line, cells = first
        if "交易时间" not in {name.strip() for name in cells}:
            raise StatementRejected("the file is not a WeChat Pay trade bill (no 交易时间 column)", line=line)
        self._columns = Columns(cells, line=line, required=REQUIRED, what="WeChat Pay trade bill")
        self._expected_account = account
        self._pending = next(self._records, None)
        self.header = StatementHeader(
            source=SOURCE,
            account=account or self._first_account(),
            period_start=None,
            period_end=None,
            currency="CNY",
        )
        self._read = False

    def _first_account(self) -> str:
        if self._pending is None or self._pending[1][0].strip() == SUMMARY_FIRST:
            return ""
        cells = self._pending[1]
        index = self._columns.index("商户号")
        return cells[index].strip().removeprefix("`") if index < len(cells) else ""

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        if self._read:
            raise RuntimeError("a statement is read once")
        self._read = True
        columns = self._columns
        width = columns.width
        at = columns.index
        i_time, i_account, i_txn, i_out, i_state = (
            at(n) for n in ("交易时间", "商户号", "微信订单号", "商户订单号", "交易状态")
        )
        i_settle, i_fee = at("应结订单金额"), at("手续费")
        i_currency = columns.optional("货币种类")
        i_refund_id, i_refund_no, i_refund = (columns.optional(n) for n in REFUND_COLUMNS)
        i_refunded_at = columns.optional("退款成功时间")
        i_subject = columns.optional("商品名称")
        summed = {name: i for name, i in ((n, columns.optional(n)) for n in _SUMMED.values()) if i is not None}
        totals = dict.fromkeys(summed, 0)
        settled_payments = 0
        ordered_payments = 0
        i_ordered = columns.optional("订单金额")
        times = LocalTimes(BEIJING)
        account = self.header.account
        count = 0
        batch: list[StatementLine] = []
        records = self._records
        pending = self._pending
        summary: tuple[int, list[str]] | None = None
        while pending is not None:
            line, cells = pending
            pending = next(records, None)
            if cells[0].strip() == SUMMARY_FIRST:
                summary = (line, cells)
                break
            if len(cells) != width:
                raise StatementRejected(
                    f"the row has {len(cells)} columns, the header {width} (a truncated or broken row)", line=line
                )
            cells = [cell[1:] if cell.startswith("`") else cell for cell in cells]
            count += 1
            for name, index in summed.items():
                totals[name] += amount(cells[index].strip(), line=line, column=name)
            if cells[i_account] != account:
                raise StatementRejected(
                    f"the row is for merchant {cells[i_account]!r}, the bill for {account!r}",
                    line=line,
                    column="商户号",
                )
            state = cells[i_state]
            if state in _NO_MONEY:
                continue
            settle = amount(cells[i_settle], line=line, column="应结订单金额")
            fee = amount(cells[i_fee], line=line, column="手续费")
            currency = cells[i_currency] if i_currency is not None and cells[i_currency] else "CNY"
            subject = cells[i_subject] if i_subject is not None else ""
            if state == "SUCCESS":
                settled_payments += settle
                if i_ordered is not None:
                    ordered_payments += amount(cells[i_ordered], line=line, column="订单金额")
                batch.append(
                    StatementLine(
                        line,
                        "pay:" + cells[i_txn],
                        "payment",
                        times(cells[i_time], line=line, column="交易时间"),
                        settle,
                        fee,
                        currency,
                        cells[i_out],
                        cells[i_txn],
                        "",
                        state,
                        subject,
                    )
                )
            elif state == "REFUND":
                if i_refund_id is None or i_refund_no is None or i_refund is None:
                    missing = next(
                        n
                        for n, i in zip(REFUND_COLUMNS, (i_refund_id, i_refund_no, i_refund), strict=True)
                        if i is None
                    )
                    raise StatementRejected(
                        "a refund row, but the bill has no refund columns", line=line, column=missing
                    )
                refunded_at = cells[i_refunded_at] if i_refunded_at is not None and cells[i_refunded_at] else ""
                batch.append(
                    StatementLine(
                        line,
                        "refund:" + cells[i_refund_id],
                        "refund",
                        times(
                            refunded_at or cells[i_time],
                            line=line,
                            column="退款成功时间" if refunded_at else "交易时间",
                        ),
                        amount(cells[i_refund], line=line, column="退款金额"),
                        abs(fee),
                        currency,
                        cells[i_out],
                        cells[i_refund_id],
                        cells[i_refund_no],
                        state,
                        subject,
                    )
                )
            else:
                raise StatementRejected(f"unknown 交易状态 {state!r}", line=line, column="交易状态")
            if len(batch) >= size:
                yield batch
                batch = []
        if summary is None:
            raise StatementRejected(
                "the bill ends without its summary rows (a truncated file)", line=self._rows.line_num
            )
        _check_summary(summary, pending, next(records, None), count, totals, settled_payments, ordered_payments)
        if batch:
            yield batch


def _check_summary(
    summary: tuple[int, list[str]],
    values_record: tuple[int, list[str]] | None,
    after: tuple[int, list[str]] | None,
    count: int,
    totals: dict[str, int],
    settled_payments: int,
    ordered_payments: int,
) -> None:
    """The summary values against the rows: the count, and every amount the summary prints a total of."""
    line, names = summary
    columns = Columns(names, line=line, required=SUMMARY_REQUIRED, what="WeChat Pay bill summary")
    if values_record is None:
        raise StatementRejected("the summary header has no values row (a truncated file)", line=line)
    values_line, raw = values_record
    if after is not None:
        raise StatementRejected("rows follow the summary", line=after[0])
    if len(raw) != columns.width:
        raise StatementRejected(
            f"the summary values row has {len(raw)} columns, its header {columns.width}", line=values_line
        )
    values = [cell.strip().removeprefix("`") for cell in raw]
    printed_count = values[columns.index("总交易单数")]
    if not (printed_count.isascii() and printed_count.isdigit()) or int(printed_count) != count:
        raise StatementRejected(
            f"the summary counts {printed_count} rows, the bill has {count}", line=values_line, column="总交易单数"
        )
    for total_name, row_name in _SUMMED.items():
        index = columns.optional(total_name)
        if index is None or row_name not in totals:
            continue
        printed = amount(values[index], line=values_line, column=total_name)
        # whether refund rows' 应结订单金额/订单金额 (the original order's) count in the total is not documented
        # the same way everywhere: both readings are accepted, any other figure is not.
        accepted = {totals[row_name]}
        if row_name == "应结订单金额":
            accepted.add(settled_payments)
        elif row_name == "订单金额":
            accepted.add(ordered_payments)
        if printed not in accepted:
            raise StatementRejected(
                f"the summary says {values[index]}, the rows add up to {yuan(totals[row_name])}",
                line=values_line,
                column=total_name,
            )
