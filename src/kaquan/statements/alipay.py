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

import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import IO, Final

from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import BEIJING, Columns, LocalTimes, Rows, amount, is_zip, seekable, text_lines, yuan

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
        self.preamble: list[tuple[int, str]] = []
        self.trailer: list[tuple[int, str]] = []
        self._rows = Rows(_table_lines(text_lines(stream, ENCODING), self))
        self._records = iter(self._rows)
        first = next(self._records, None)
        if first is None:
            if not self.preamble:
                raise StatementRejected("the file is empty, not an Alipay 业务明细")
            raise StatementRejected("the 业务明细 has no header row", line=self.preamble[-1][0])
        line, cells = first
        if not any(cell.strip() == "支付宝交易号" for cell in cells):
            raise StatementRejected("the file is not an Alipay 业务明细 (no 支付宝交易号 column)", line=line)
        self._columns = Columns(cells, line=line, required=REQUIRED, what="Alipay 业务明细")
        found_account, start, end = _read_preamble(self.preamble)
        if account is not None and found_account and found_account != account:
            line_of_account = next(n for n, text in self.preamble if _ACCOUNT.search(text))
            raise StatementRejected(
                f"the file is for account {found_account!r}, not {account!r}", line=line_of_account, column="账号"
            )
        self.header = StatementHeader(
            source=SOURCE, account=found_account or account or "", period_start=start, period_end=end, currency="CNY"
        )
        self._read = False

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        if self._read:
            raise RuntimeError("a statement is read once")
        self._read = True
        columns = self._columns
        width = columns.width
        at = columns.index
        i_trade, i_out, i_type, i_done = at("支付宝交易号"), at("商户订单号"), at("业务类型"), at("完成时间")
        i_order, i_received, i_fee, i_refund_no = (
            at("订单金额（元）"),
            at("商家实收（元）"),
            at("服务费（元）"),
            at("退款批次号/请求号"),
        )
        i_created = columns.optional("创建时间")
        i_subject = columns.optional("商品名称")
        times = LocalTimes(BEIJING)
        sums = {"交易": [0, 0, 0], "退款": [0, 0, 0]}  # rows, 商家实收, 服务费
        batch: list[StatementLine] = []
        for line, raw in self._records:
            if len(raw) != width:
                raise StatementRejected(f"the row has {len(raw)} columns, the header {width} (a broken row)", line=line)
            cells = [cell.strip() for cell in raw]
            business = cells[i_type]
            kind = _KINDS.get(business)
            if kind is None:
                raise StatementRejected(f"unknown 业务类型 {business!r}", line=line, column="业务类型")
            received = amount(cells[i_received], line=line, column="商家实收（元）")
            fee = amount(cells[i_fee], line=line, column="服务费（元）")
            figures = sums[business]
            figures[0] += 1
            figures[1] += received
            figures[2] += fee
            done = cells[i_done] or (cells[i_created] if i_created is not None else "")
            occurred_at = times(done, line=line, column="完成时间")
            trade_no = cells[i_trade]
            if kind == "payment":
                gross = amount(cells[i_order], line=line, column="订单金额（元）")
                identity, refund_ref = "pay:" + trade_no, ""
            else:
                refund_ref = cells[i_refund_no]
                if not refund_ref:
                    raise StatementRejected(
                        "a refund row without its request number", line=line, column="退款批次号/请求号"
                    )
                gross = -received
                identity = f"refund:{trade_no}:{refund_ref}"
            batch.append(
                StatementLine(
                    line,
                    identity,
                    kind,
                    occurred_at,
                    abs(gross),
                    abs(fee),
                    "CNY",
                    cells[i_out],
                    trade_no,
                    refund_ref,
                    business,
                    cells[i_subject] if i_subject is not None else "",
                )
            )
            if len(batch) >= size:
                yield batch
                batch = []
        self._check_totals(sums)
        if batch:
            yield batch

    def _check_totals(self, sums: dict[str, list[int]]) -> None:
        """`#交易合计：N笔，商家实收：X元，商家实收退款：Y元，服务费：F元，服务费退款：G元` and `#退款合计：M笔`."""
        end = self._rows.line_num
        if not any("列表结束" in text for _, text in self.trailer):
            raise StatementRejected("the 业务明细 ends without its 列表结束 line (a truncated file)", line=end)
        totals = [(n, text) for n, text in self.trailer if "交易合计" in text]
        if not totals:
            raise StatementRejected("the 业务明细 ends without its 交易合计 line (a truncated file)", line=end)
        expected = {
            "交易合计": (sums["交易"][0], "笔"),
            "商家实收": (sums["交易"][1], "元"),
            "商家实收退款": (sums["退款"][1], "元"),
            "服务费": (sums["交易"][2], "元"),
            "服务费退款": (sums["退款"][2], "元"),
            "退款合计": (sums["退款"][0], "笔"),
        }
        for line, text in self.trailer:
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


def _table_lines(lines: Iterator[str], detail: AlipayDetail) -> Iterator[str]:
    """The CSV lines of the table; `#` lines before it go to the preamble, those after it to the trailer."""
    line_no = 0
    in_table = False
    for text in lines:
        line_no += 1
        if text.startswith("#"):
            (detail.trailer if in_table else detail.preamble).append((line_no, text.rstrip("\r\n")))
            if len(detail.preamble) > 64 or len(detail.trailer) > 64:
                raise StatementRejected("too many # lines for an Alipay 业务明细", line=line_no)
            yield "\n"  # keeps the CSV reader's line count equal to the file's
            continue
        if detail.trailer:
            if text.strip():
                raise StatementRejected("rows follow the 业务明细's end lines", line=line_no)
            continue
        in_table = True
        yield text


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
