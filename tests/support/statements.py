"""Statement files for tests: the formats as counterparties serve them, small by hand or large by streaming.

`wechat_bill` writes a trade bill the way WeChat Pay does (BOM, backticks,
summary rows computed from the rows unless a test overrides them), with any
column set, so that tests can drop, reorder or add columns. `write_wechat_bill`
streams a large ALL bill to a file for the speed measurement.
"""

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from kaquan.payments.wechatpay import protocol as wechat_protocol
from kaquan.statements import Statement, StatementLine

BEIJING_OFFSET = timedelta(hours=8)

# the real bill's columns, as kaquan's WeChat Pay simulator writes them
WECHAT_ALL = wechat_protocol.BILL_COLUMNS
WECHAT_SUMMARY = wechat_protocol.SUMMARY_COLUMNS
_SUMMED = {
    "应结订单总金额": "应结订单金额",
    "退款总金额": "退款金额",
    "充值券退款总金额": "充值券退款金额",
    "手续费总金额": "手续费",
    "订单总金额": "订单金额",
    "申请退款总金额": "申请退款金额",
}
MERCHANT = "1900000109"


def wechat_payment(n: int, *, fen: int = 1990, fee: int = 12, at: str = "2026-12-05 09:15:02") -> dict[str, str]:
    return {
        "交易时间": at,
        "公众账号ID": "wx2421b1c4370ec43b",
        "商户号": MERCHANT,
        "特约商户号": "0",
        "设备号": "",
        "微信订单号": f"42000020261205{n:014d}",
        "商户订单号": f"pt_{n:08d}",
        "用户标识": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "交易类型": "NATIVE",
        "交易状态": "SUCCESS",
        "付款银行": "OTHERS",
        "货币种类": "CNY",
        "应结订单金额": _yuan(fen),
        "代金券金额": "0.00",
        "微信退款单号": "0",
        "商户退款单号": "0",
        "退款金额": "0.00",
        "充值券退款金额": "0.00",
        "退款类型": "",
        "退款状态": "",
        "商品名称": "京东E卡 100元",
        "商户数据包": "",
        "手续费": _yuan(fee),
        "费率": "0.60%",
        "订单金额": _yuan(fen),
        "申请退款金额": "0.00",
        "费率备注": "",
    }


def wechat_refund(n: int, *, fen: int = 1990, fee_back: int = 12, at: str = "2026-12-05 10:00:00") -> dict[str, str]:
    return wechat_payment(n, fen=0, fee=0, at=at) | {
        "交易状态": "REFUND",
        "微信退款单号": f"50300020261205{n:014d}",
        "商户退款单号": f"rf_{n:08d}",
        "退款金额": _yuan(fen),
        "退款类型": "ORIGINAL",
        "退款状态": "SUCCESS",
        "手续费": _yuan(-fee_back),
        "申请退款金额": _yuan(fen),
    }


def wechat_bill(
    rows: Iterable[Mapping[str, str]],
    *,
    columns: Sequence[str] = WECHAT_ALL,
    summary: Mapping[str, str] | None = None,
    bom: bool = True,
) -> bytes:
    """A bill with `columns` in that order; the summary adds up the rows, then `summary` overrides any figure."""
    rows = list(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["`" + row.get(name, "") for name in columns])
    totals = {"总交易单数": str(len(rows))}
    for total, column in _SUMMED.items():
        totals[total] = _yuan(sum(_fen(row.get(column, "0.00")) for row in rows))
    totals |= summary or {}
    writer.writerow(WECHAT_SUMMARY)
    writer.writerow(["`" + totals[name] for name in WECHAT_SUMMARY])
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


def write_wechat_bill(path: Path, lines: int, *, refund_every: int = 20) -> None:
    """A large ALL bill streamed to `path`: one refund row every `refund_every` rows, times across one Beijing day."""
    start = datetime(2026, 12, 5, tzinfo=UTC) - BEIJING_OFFSET
    count = settled = refunded = fees = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        out.write("\ufeff")
        writer.writerow(WECHAT_ALL)
        for n in range(lines):
            at = (start + timedelta(seconds=n * 86_399 // max(lines, 1)) + BEIJING_OFFSET).strftime("%Y-%m-%d %H:%M:%S")
            fen = 100 + n % 50_000
            if n % refund_every == refund_every - 1:
                row = wechat_refund(n, fen=fen, fee_back=fen * 6 // 1000, at=at)
                refunded += fen
                fees -= fen * 6 // 1000
            else:
                row = wechat_payment(n, fen=fen, fee=fen * 6 // 1000, at=at)
                settled += fen
                fees += fen * 6 // 1000
            count += 1
            writer.writerow(["`" + row[name] for name in WECHAT_ALL])
        writer.writerow(WECHAT_SUMMARY)
        totals = (str(count), _yuan(settled), _yuan(refunded), "0.00", _yuan(fees), _yuan(settled), _yuan(refunded))
        writer.writerow(["`" + value for value in totals])


def read_all(statement: Statement, size: int = 50_000) -> list[StatementLine]:
    return [line for batch in statement.batches(size) for line in batch]


def stream(data: bytes) -> IO[bytes]:
    return io.BytesIO(data)


class OneWay(io.RawIOBase):
    """A stream that can only be read forward, as an upload or a socket: no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "memoryview | bytearray") -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def _fen(text: str) -> int:
    """A yuan text as fen for the summary; 0 for a cell a test made unparseable on purpose."""
    if not re.fullmatch(r"-?\d+(\.\d{1,2})?", text):
        return 0
    negative = text.startswith("-")
    whole, _, cents = text.lstrip("-").partition(".")
    value = int(whole) * 100 + int(cents.ljust(2, "0"))
    return -value if negative else value
