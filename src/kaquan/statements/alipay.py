"""Alipay's business detail (业务明细) CSV, alone or in the zip Alipay serves, as downloaded.

GBK text. Lines starting with `#` frame the table: the title, `#账号：[…]`,
`#起始日期：[…]   终止日期：[…]` (Beijing time, the end exclusive), a rule
naming 业务明细列表 above the header row and 业务明细列表结束 below the rows,
then the totals (`#交易合计：N笔，商家实收：…元，…`, `#退款合计：M笔`) and the
export time. Long ids carry a trailing tab inside the field (so that
spreadsheets keep them as text) and cells may be padded with spaces: every
cell is stripped. A refund row repeats the trade's 支付宝交易号 and 订单金额;
its own amount is the negative 商家实收, its id the 退款批次号/请求号.
"""

import csv
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import IO, Final

import polars as pl

from kaquan.statements import columnar, frames
from kaquan.statements.columnar import Chunk, Table, amount_check, fen, first_failure, time_check
from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import MAX_LINE_BYTES, BlockDecoder, Columns, amount, is_zip, seekable, yuan

SOURCE: Final = "alipay"
ENCODING: Final = "gbk"
REQUIRED: Final = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "服务费（元）",
    "退款批次号/请求号",
)
_KINDS: Final[dict[str, LineKind]] = {"交易": "payment", "退款": "refund"}
_AMOUNTS: Final = ("订单金额（元）", "商家实收（元）", "服务费（元）")
BEIJING_OFFSET: Final = timedelta(hours=8)
_ACCOUNT = re.compile(r"#账号[：:]\s*\[([^\]]*)\]")
_PERIOD = re.compile(r"起始日期[：:]\s*\[([^\]]+)\]\s*终止日期[：:]\s*\[([^\]]+)\]")
_FIGURE = re.compile(r"([^：:，,#\s]+)[：:]\s*(-?[\d.]+)\s*(笔|元)")
_DAY_TIME = ("%Y年%m月%d日 %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y年%m月%d日")


class AlipayDetail:
    """The 业务明细 rows read as they stream; the totals line is checked against them before the last batch."""

    def __init__(self, stream: IO[bytes], *, account: str | None = None) -> None:
        zipped, stream = is_zip(stream)
        if zipped:
            stream = _detail_member(stream)
        decoder = BlockDecoder(ENCODING)
        self.preamble, (line, cells) = _preamble_and_header(stream, decoder)
        if not any(cell.strip() == "支付宝交易号" for cell in cells):
            raise StatementRejected("the file is not an Alipay 业务明细 (no 支付宝交易号 column)", line=line)
        self._columns = Columns(cells, line=line, required=REQUIRED, what="Alipay 业务明细")
        self._used = [name for name in (*REQUIRED, "创建时间", "商品名称") if name in self._columns]
        found_account, start, end = _read_preamble(self.preamble)
        if account is not None and found_account and found_account != account:
            line_of_account = next(n for n, text in self.preamble if _ACCOUNT.search(text))
            raise StatementRejected(
                f"the file is for account {found_account!r}, not {account!r}", line=line_of_account, column="账号"
            )
        self.header = StatementHeader(
            source=SOURCE, account=found_account or account or "", period_start=start, period_end=end, currency="CNY"
        )
        self._table = Table(
            stream,
            {name: self._columns.index(name) for name in self._used},
            self._columns.width,
            decoder,
            first_line=line + 1,
            stop_prefix="#",
        )
        self._read = False

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        return map(frames.lines_of, self.frames(size))

    def frames(self, size: int = 50_000) -> Iterator[pl.DataFrame]:
        """The lines as frames of `frames.LINE_SCHEMA`, `size` at a time (the form `batches` converts)."""
        if self._read:
            raise RuntimeError("a statement is read once")
        self._read = True
        sums = {"交易": [0, 0, 0], "退款": [0, 0, 0]}  # rows, 商家实收, 服务费
        chunks = (self._frame(chunk, sums) for chunk in self._table)
        return frames.sized(chunks, size, lambda: self._check_totals(sums))

    def _frame(self, chunk: Chunk, sums: dict[str, list[int]]) -> pl.DataFrame:
        cells = chunk.frame.select(chunk.frame[name].str.strip_chars().fill_null("") for name in self._used)
        business = cells["业务类型"]
        refund = business == "退款"
        done = cells["完成时间"]
        if "创建时间" in cells.columns:
            done = pl.select(pl.when(done == "").then(cells["创建时间"]).otherwise(done)).to_series()
        refund_no = cells["退款批次号/请求号"]
        checks: list[columnar.Check] = [
            columnar.width_check(chunk, last_may_be_empty=True),
            ("业务类型", ~business.is_in(list(_KINDS)), lambda row: f"unknown 业务类型 {business[row]!r}"),
            *(amount_check(name, cells[name]) for name in _AMOUNTS),
            time_check("完成时间", done),
            ("退款批次号/请求号", refund & (refund_no == ""), lambda row: "a refund row without its request number"),
        ]
        first_failure(chunk, checks)
        order, received, fee = (fen(cells[name]) for name in _AMOUNTS)
        for name, rows in (("交易", ~refund), ("退款", refund)):
            figures = sums[name]
            figures[0] += int(rows.sum())
            figures[1] += int(received.filter(rows).sum())
            figures[2] += int(fee.filter(rows).sum())
        trade = cells["支付宝交易号"]
        columns: dict[str, pl.Series | str] = {
            "line_no": chunk.lines,
            "occurred_at": frames.utc_times(done, BEIJING_OFFSET),
            "fee_minor": fee.abs(),
            "currency": "CNY",
            "merchant_ref": cells["商户订单号"],
            "counterparty_ref": trade,
            "description": cells["商品名称"] if "商品名称" in cells.columns else "",
        }
        if refund.any():
            columns |= pl.select(
                identity=pl.when(refund).then("refund:" + trade + ":" + refund_no).otherwise("pay:" + trade),
                amount_minor=pl.when(refund).then(-received).otherwise(order).abs(),
                kind=pl.when(refund).then(pl.lit("refund")).otherwise(pl.lit("payment")),
                status=pl.when(refund).then(pl.lit("退款")).otherwise(pl.lit("交易")),
                refund_ref=pl.when(refund).then(refund_no).otherwise(pl.lit("")),
            ).to_dict()
        else:
            columns |= {
                "identity": "pay:" + trade,
                "amount_minor": order.abs(),
                "kind": "payment",
                "status": "交易",
                "refund_ref": "",
            }
        return frames.line_frame(cells.height, columns)

    def _check_totals(self, sums: dict[str, list[int]]) -> None:
        """`#交易合计：N笔，商家实收：X元，商家实收退款：Y元，服务费：F元，服务费退款：G元` and `#退款合计：M笔`."""
        tail = self._table.tail
        if tail is None:
            raise StatementRejected(
                "the 业务明细 ends without its 列表结束 line (a truncated file)", line=self._table.last_line
            )
        trailer = [(line, text.strip()) for line, text in tail.lines if text.strip()]
        for line, text in trailer:
            if not text.startswith("#"):
                raise StatementRejected("rows follow the 业务明细's end lines", line=line)
        end_line = tail.lines[-1][0] if tail.lines else self._table.last_line
        if not any("列表结束" in text for _, text in trailer):
            raise StatementRejected("the 业务明细 ends without its 列表结束 line (a truncated file)", line=end_line)
        if not any("交易合计" in text for _, text in trailer):
            raise StatementRejected("the 业务明细 ends without its 交易合计 line (a truncated file)", line=end_line)
        expected = {
            "交易合计": (sums["交易"][0], "笔"),
            "商家实收": (sums["交易"][1], "元"),
            "商家实收退款": (sums["退款"][1], "元"),
            "服务费": (sums["交易"][2], "元"),
            "服务费退款": (sums["退款"][2], "元"),
            "退款合计": (sums["退款"][0], "笔"),
        }
        for line, text in trailer:
            for name, figure, unit in _FIGURE.findall(text):
                if name not in expected:
                    continue
                want, want_unit = expected[name]
                printed = amount(figure, line=line, column=name, digits=0 if unit == "笔" else 2)
                if unit != want_unit or printed != want:
                    shown = str(want) if unit == "笔" else yuan(want)
                    raise StatementRejected(
                        f"the totals say {name} {figure}{unit}, the rows {shown}", line=line, column=name
                    )


def _preamble_and_header(
    stream: IO[bytes], decoder: BlockDecoder
) -> tuple[list[tuple[int, str]], tuple[int, list[str]]]:
    """The `#` lines above the table, and the header row."""
    preamble: list[tuple[int, str]] = []
    line = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        line += 1
        if not raw:
            if not preamble:
                raise StatementRejected("the file is empty, not an Alipay 业务明细")
            raise StatementRejected("the 业务明细 has no header row", line=preamble[-1][0])
        text = decoder(raw, line).strip()
        if text.startswith("#"):
            preamble.append((line, text))
            if len(preamble) > 64:
                raise StatementRejected("too many # lines for an Alipay 业务明细", line=line)
        elif text:
            return preamble, (line, next(csv.reader([text])))


def _read_preamble(preamble: list[tuple[int, str]]) -> tuple[str, date | None, date | None]:
    account = ""
    start: date | None = None
    end: date | None = None
    for line, text in preamble:
        if found := _ACCOUNT.search(text):
            account = found.group(1).strip()
        if found := _PERIOD.search(text):
            first, last = (_day_time(value.strip(), line) for value in found.groups())
            start = first.date()
            # the end is exclusive: 终止日期 00:00:00 of the next day closes the period on the day before
            end = (last - timedelta(seconds=1)).date() if last.time() == datetime.min.time() else last.date()
    return account, start, end


def _day_time(text: str, line: int) -> datetime:
    for pattern in _DAY_TIME:
        try:
            return datetime.strptime(text, pattern)  # noqa: DTZ007 - a calendar day in Beijing, kept naive
        except ValueError:
            continue
    raise StatementRejected(f"{text!r} is not a date", line=line, column="起始日期/终止日期")


def _detail_member(stream: IO[bytes]) -> IO[bytes]:
    """The `…_业务明细.csv` member of Alipay's zip (not the 汇总 one), streamed."""
    try:
        archive = zipfile.ZipFile(seekable(stream))
    except zipfile.BadZipFile:
        raise StatementRejected("the file looks like a zip but is not a readable one") from None
    details = [info for info in archive.infolist() if _member_name(info).endswith("_业务明细.csv")]
    if len(details) != 1:
        raise StatementRejected(f"the zip holds {len(details)} 业务明细 files, not one")
    return archive.open(details[0])


def _member_name(info: zipfile.ZipInfo) -> str:
    """Alipay names members in GBK without zip's UTF-8 flag, which Python reads as cp437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except UnicodeError:
        return info.filename
