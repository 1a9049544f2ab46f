"""WeChat Pay's trade bill (交易账单), bill_type ALL, SUCCESS or REFUND, as downloaded.

The file is UTF-8 with a BOM (or gzip of it): a Chinese header row, the rows
with every value behind a backtick (so that Excel keeps long ids as text), then
a summary header row (总交易单数, 应结订单总金额, …) and its values. The column
order is not fixed (WeChat Pay says so), so every cell is found by its name.
SUCCESS bills lack the refund columns; REFUND bills add 退款申请时间 and
退款成功时间. Times are Beijing time. Refund rows print the fee given back as
a negative 手续费. A day's bill may hold a million rows: they are read in
chunks by polars and checked column by column (see `columnar`).
"""

import csv
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Final

import polars as pl

from kaquan.statements import columnar, frames
from kaquan.statements.columnar import Chunk, Table, amount_check, fen, first_failure, time_check
from kaquan.statements.lines import StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import MAX_LINE_BYTES, BlockDecoder, Columns, amount, ungzipped, yuan

SOURCE: Final = "wechatpay"
REQUIRED: Final = ("交易时间", "商户号", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "手续费")
REFUND_COLUMNS: Final = ("微信退款单号", "商户退款单号", "退款金额")
SUMMARY_FIRST: Final = "总交易单数"
SUMMARY_REQUIRED: Final = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")
# summary column -> the row column it adds up
SUMMED: Final = {
    "应结订单总金额": "应结订单金额",
    "退款总金额": "退款金额",
    "充值券退款总金额": "充值券退款金额",
    "手续费总金额": "手续费",
    "订单总金额": "订单金额",
    "申请退款总金额": "申请退款金额",
}
# A revoked (撤销) micropay moved no money: the summary counts it, but it is no line.
STATES: Final = ("SUCCESS", "REFUND", "REVOKED")
_BEIJING_OFFSET: Final = timedelta(hours=8)
_TWINS: Final = {"订单金额": "应结订单金额", "申请退款金额": "退款金额"}
_OPTIONAL: Final = ("货币种类", "商品名称", "退款成功时间", *REFUND_COLUMNS, *SUMMED.values())


class WeChatPayBill:
    """A trade bill read as it streams; the summary rows are checked against the rows before the last batch."""

    def __init__(self, stream: IO[bytes], *, account: str | None = None) -> None:
        stream = ungzipped(stream)
        decoder = BlockDecoder("utf-8")
        line, names = _header(stream, decoder)
        self._columns = Columns(names, line=line, required=REQUIRED, what="WeChat Pay trade bill")
        self._used = [name for name in dict.fromkeys((*REQUIRED, *_OPTIONAL)) if name in self._columns]
        self._table = Table(
            stream,
            {name: self._columns.index(name) for name in self._used},
            self._columns.width,
            decoder,
            first_line=line + 1,
            stop_prefix=SUMMARY_FIRST,
        )
        self._chunks = iter(self._table)
        self._first = next(self._chunks, None)
        first_account = ""
        if self._first is not None and self._first.frame.height:
            first_account = (self._first.frame["商户号"][0] or "").removeprefix("`")
        self.header = StatementHeader(
            source=SOURCE, account=account or first_account, period_start=None, period_end=None, currency="CNY"
        )
        self._read = False

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        return map(frames.lines_of, self.frames(size))

    def frames(self, size: int = 50_000) -> Iterator[pl.DataFrame]:
        """The lines as frames of `frames.LINE_SCHEMA`, `size` at a time (the form `batches` converts)."""
        if self._read:
            raise RuntimeError("a statement is read once")
        self._read = True
        sums = _Sums([name for name in SUMMED.values() if name in self._columns])
        return frames.sized(self._frames(sums), size, lambda: _check_summary(self._table, sums))

    def _frames(self, sums: "_Sums") -> Iterator[pl.DataFrame]:
        chunk = self._first
        while chunk is not None:
            yield self._frame(chunk, sums)
            chunk = next(self._chunks, None)

    def _frame(self, chunk: Chunk, sums: "_Sums") -> pl.DataFrame:
        raw = chunk.frame
        amount_names = list(dict.fromkeys(("应结订单金额", "手续费", *sums.columns)))
        # a column that is all zeros (often 充值券退款金额, 申请退款金额) needs neither its backticks cut nor parsing
        zero = {name for name in amount_names if _all_equal(raw[name], "`0.00")}
        # 订单金额 repeats 应结订单金额 and 申请退款金额 repeats 退款金额 unless coupons were used: then reuse them
        same = {
            name
            for name, twin in _TWINS.items()
            if name in amount_names and name not in zero and twin in raw.columns and (raw[name] == raw[twin]).all()
        }
        skipped = zero | same | {"商户号"}
        if "货币种类" in raw.columns and _all_equal(raw["货币种类"], "`CNY"):
            skipped.add("货币种类")
        cells = raw.select(columnar.unticked(raw[name]).fill_null("") for name in self._used if name not in skipped)
        state = cells["交易状态"]
        refund = state == "REFUND"
        has_refunds = bool(refund.any())
        checks: list[columnar.Check] = [columnar.width_check(chunk)]
        checks.extend(amount_check(name, cells[name]) for name in amount_names if name not in zero | same)
        account = self.header.account
        merchant = raw["商户号"].fill_null("")
        checks.append(
            (
                "商户号",
                (merchant != "`" + account) & (merchant != account),
                lambda row: f"the row is for merchant {merchant[row].removeprefix('`')!r}, not {account!r}",
            )
        )
        checks.append(("交易状态", ~state.is_in(STATES), lambda row: f"unknown 交易状态 {state[row]!r}"))
        checks.append(time_check("交易时间", cells["交易时间"]))
        refunded_at = cells["退款成功时间"] if "退款成功时间" in cells.columns else None
        if refunded_at is not None:
            checks.append(time_check("退款成功时间", refunded_at, where=refund & (refunded_at != "")))
        if has_refunds:
            for name in REFUND_COLUMNS:
                if name not in cells.columns:
                    checks.append((name, refund, lambda row: "a refund row, but the bill has no refund columns"))
        first_failure(chunk, checks)

        amounts = cells.select(
            pl.repeat(0, cells.height, dtype=pl.Int64, eager=True).alias(name) if name in zero else fen(cells[name])
            for name in amount_names
            if name not in same
        )
        if same:
            amounts = amounts.with_columns(amounts[_TWINS[name]].alias(name) for name in same)
        sums.add(amounts, state)
        moved = state != "REVOKED"
        line_nos = chunk.lines
        if not moved.all():
            cells, amounts, refund, line_nos = (
                cells.filter(moved),
                amounts.filter(moved),
                refund.filter(moved),
                line_nos.filter(moved),
            )
        columns: dict[str, pl.Series | str] = {
            "line_no": line_nos,
            "currency": cells["货币种类"].replace("", "CNY") if "货币种类" in cells.columns else "CNY",
            "merchant_ref": cells["商户订单号"],
            "description": cells["商品名称"] if "商品名称" in cells.columns else "",
        }
        if has_refunds:
            is_refund = pl.col("交易状态") == "REFUND"
            at = pl.col("交易时间")
            if refunded_at is not None:
                at = pl.when(is_refund & (pl.col("退款成功时间") != "")).then("退款成功时间").otherwise(at)
            texts = cells.select(
                identity=pl.when(is_refund)
                .then(pl.lit("refund:") + pl.col("微信退款单号"))
                .otherwise(pl.lit("pay:") + pl.col("微信订单号")),
                kind=pl.when(is_refund).then(pl.lit("refund")).otherwise(pl.lit("payment")),
                counterparty_ref=pl.when(is_refund).then("微信退款单号").otherwise("微信订单号"),
                refund_ref=pl.when(is_refund).then("商户退款单号").otherwise(pl.lit("")),
                status=pl.when(is_refund).then(pl.lit("REFUND")).otherwise(pl.lit("SUCCESS")),
                local_time=at,
            )
            money = pl.select(
                amount_minor=pl.when(refund).then(amounts["退款金额"]).otherwise(amounts["应结订单金额"]),
                fee_minor=pl.when(refund).then(amounts["手续费"].abs()).otherwise(amounts["手续费"]),
            )
            columns |= texts.drop("local_time").to_dict() | money.to_dict()
            local_time = texts["local_time"]
        else:
            txn = cells["微信订单号"]
            columns |= {
                "identity": "pay:" + txn,
                "kind": "payment",
                "counterparty_ref": txn,
                "refund_ref": "",
                "status": "SUCCESS",
                "amount_minor": amounts["应结订单金额"],
                "fee_minor": amounts["手续费"],
            }
            local_time = cells["交易时间"]
        columns["occurred_at"] = frames.utc_times(local_time, _BEIJING_OFFSET)
        return frames.line_frame(cells.height, columns)


def _all_equal(values: pl.Series, ticked: str) -> bool:
    """Every cell is `ticked` (with its backtick) or the same text without it."""
    if (values == ticked).all():
        return True
    return bool(((values == ticked) | (values == ticked[1:])).all())


class _Sums:
    """What the summary row adds up: rows, each summed column, and the payments' own amounts."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.count = 0
        self.totals = dict.fromkeys(columns, 0)
        self.settled_payments = 0
        self.ordered_payments = 0

    def add(self, amounts: pl.DataFrame, state: pl.Series) -> None:
        self.count += amounts.height
        for name in self.columns:
            self.totals[name] += int(amounts[name].sum())
        paid = state == "SUCCESS"
        self.settled_payments += int(amounts["应结订单金额"].filter(paid).sum())
        if "订单金额" in amounts.columns:
            self.ordered_payments += int(amounts["订单金额"].filter(paid).sum())


def _header(stream: IO[bytes], decoder: BlockDecoder) -> tuple[int, list[str]]:
    line = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        line += 1
        if not raw:
            raise StatementRejected("the file is empty, not a WeChat Pay trade bill")
        text = decoder(raw, line).strip()
        if text:
            break
    names = next(csv.reader([text]))
    if "交易时间" not in {name.strip() for name in names}:
        raise StatementRejected("the file is not a WeChat Pay trade bill (no 交易时间 column)", line=line)
    return line, names


def _check_summary(table: Table, sums: _Sums) -> None:
    """The summary values against the rows: the count, and every amount the summary prints a total of."""
    if table.tail is None:
        raise StatementRejected("the bill ends without its summary rows (a truncated file)", line=table.last_line)
    records = [(line, next(csv.reader([text]))) for line, text in table.tail.lines if text.strip()]
    line, names = records[0]
    columns = Columns(names, line=line, required=SUMMARY_REQUIRED, what="WeChat Pay bill summary")
    if len(records) < 2:
        raise StatementRejected("the summary header has no values row (a truncated file)", line=line)
    values_line, raw = records[1]
    if len(records) > 2:
        raise StatementRejected("rows follow the summary", line=records[2][0])
    if len(raw) != columns.width:
        raise StatementRejected(
            f"the summary values row has {len(raw)} columns, its header {columns.width}", line=values_line
        )
    values = [cell.strip().removeprefix("`") for cell in raw]
    printed_count = values[columns.index("总交易单数")]
    if not (printed_count.isascii() and printed_count.isdigit()) or int(printed_count) != sums.count:
        raise StatementRejected(
            f"the summary counts {printed_count} rows, the bill has {sums.count}", line=values_line, column="总交易单数"
        )
    for total_name, row_name in SUMMED.items():
        index = columns.optional(total_name)
        if index is None or row_name not in sums.totals:
            continue
        printed = amount(values[index], line=values_line, column=total_name)
        # whether refund rows' 应结订单金额/订单金额 (the original order's) count in the total is not documented
        # the same way everywhere: both readings are accepted, any other figure is not.
        accepted = {sums.totals[row_name]}
        if row_name == "应结订单金额":
            accepted.add(sums.settled_payments)
        elif row_name == "订单金额":
            accepted.add(sums.ordered_payments)
        if printed not in accepted:
            raise StatementRejected(
                f"the summary says {values[index]}, the rows add up to {yuan(sums.totals[row_name])}",
                line=values_line,
                column=total_name,
            )
