"""Alipay's daily trade bill (业务明细), written (the simulator's side) and read (reconciliation's side).

Alipay serves a zip of two GBK CSV files, the details (业务明细) and the
summary (业务明细(汇总)). Lines starting with `#` frame the table: the account,
the period, a rule above and below the rows, totals and the export time. Long
numeric ids carry a trailing tab inside the field so that spreadsheets keep
them as text; readers strip it.
"""

import csv
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from kaquan.payments.alipay import protocol

ENCODING = "gbk"
DETAIL_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]
SUMMARY_HEADER = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
]
RULE = "-" * 41

BillKind = Literal["交易", "退款"]


@dataclass(frozen=True)
class BillLine:
    """One row of 业务明细: a payment (交易) or a refund (退款); amounts in fen, signed as Alipay prints them."""

    trade_no: str
    out_trade_no: str
    kind: BillKind
    subject: str
    created_at: datetime
    finished_at: datetime
    counterparty: str  # 对方账户: the buyer's masked logon id
    order_fen: int  # 订单金额
    received_fen: int  # 商家实收: negative on a refund
    refund_no: str  # 退款批次号/请求号: the refund's out_request_no
    fee_fen: int  # 服务费: negative when Alipay takes it, positive when a refund gives it back


def signed_yuan(amount_fen: int) -> str:
    return ("-" if amount_fen < 0 else "") + protocol.yuan(abs(amount_fen))


def signed_fen(text: str) -> int:
    text = text.strip()
    return -protocol.fen(text[1:]) if text.startswith("-") else protocol.fen(text)


def _day_text(at: datetime) -> str:
    local = at.astimezone(protocol.CHINA_TIME)
    return local.strftime("%Y年%m月%d日 %H:%M:%S")


def _period(account: str, day: date, title: str) -> list[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=protocol.CHINA_TIME)
    end = start + timedelta(days=1)
    return [
        f"#支付宝{title}查询",
        f"#账号：[{account}]",
        f"#起始日期：[{_day_text(start)}]   终止日期：[{_day_text(end)}]",
        f"#{RULE}{title}列表{RULE}",
    ]


def _rows(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().splitlines()


def write_bill(account: str, day: date, lines: list[BillLine], *, exported_at: datetime) -> bytes:
    """The provider's side: the zip Alipay serves for one account's day."""
    trades = [line for line in lines if line.kind == "交易"]
    refunds = [line for line in lines if line.kind == "退款"]
    detail_rows = [
        [
            f"{line.trade_no}\t",
            f"{line.out_trade_no}\t",
            line.kind,
            line.subject,
            protocol.china_time(line.created_at),
            protocol.china_time(line.finished_at),
            "",
            "",
            "",
            "",
            line.counterparty,
            signed_yuan(line.order_fen),
            signed_yuan(line.received_fen),
            *(["0.00"] * 5),
            "",
            "0.00",
            "0.00",
            f"{line.refund_no}\t" if line.refund_no else "",
            signed_yuan(line.fee_fen),
            "0.00",
            "",
        ]
        for line in lines
    ]
    received = sum(line.received_fen for line in trades)
    refunded = sum(line.received_fen for line in refunds)
    fees = sum(line.fee_fen for line in trades)
    fees_back = sum(line.fee_fen for line in refunds)
    exported = f"#导出时间：[{_day_text(exported_at)}]"
    detail = [
        *_period(account, day, "业务明细"),
        *_rows(DETAIL_HEADER, detail_rows),
        f"#{RULE}业务明细列表结束{RULE}",
        f"#交易合计：{len(trades)}笔，商家实收：{signed_yuan(received)}元，商家实收退款：{signed_yuan(refunded)}元，"
        f"服务费：{signed_yuan(fees)}元，服务费退款：{signed_yuan(fees_back)}元",
        f"#退款合计：{len(refunds)}笔",
        exported,
    ]
    summary_row = [
        "",
        "合计",
        str(len(trades)),
        str(len(refunds)),
        signed_yuan(sum(line.order_fen for line in trades)),
        signed_yuan(received + refunded),
        "0.00",
        "0.00",
        "0.00",
        signed_yuan(fees + fees_back),
        "0.00",
        signed_yuan(received + refunded + fees + fees_back),
    ]
    summary = [
        *_period(account, day, "业务汇总"),
        *_rows(SUMMARY_HEADER, [summary_row]),
        f"#{RULE}业务汇总列表结束{RULE}",
        exported,
    ]
    stem = f"{account}0156_{day:%Y%m%d}"
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}_业务明细.csv", _encoded(detail))
        archive.writestr(f"{stem}_业务明细(汇总).csv", _encoded(summary))
    return packed.getvalue()


def _encoded(lines: list[str]) -> bytes:
    # a subject may hold characters GBK lacks (emoji): Alipay's export shows them as "?"
    return ("\r\n".join(lines) + "\r\n").encode(ENCODING, errors="replace")


def read_bill(archive_bytes: bytes) -> list[BillLine]:
    """Reconciliation's side: the rows of the 业务明细 file in an Alipay bill zip."""
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        names = [name for name in archive.namelist() if name.endswith("_业务明细.csv")]
        if len(names) != 1:
            raise protocol.ProtocolError("the bill holds no single 业务明细 file")
        text = archive.read(names[0]).decode(ENCODING)
    table = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = list(csv.reader(table))
    if not rows or rows[0] != DETAIL_HEADER:
        raise protocol.ProtocolError("the 业务明细 file does not start with Alipay's header row")
    column = {name: index for index, name in enumerate(DETAIL_HEADER)}
    lines = []
    for row in rows[1:]:
        cell = [value.strip() for value in row]
        kind = cell[column["业务类型"]]
        if kind not in ("交易", "退款"):
            raise protocol.ProtocolError(f"unknown 业务类型 {kind!r}")
        lines.append(
            BillLine(
                trade_no=cell[column["支付宝交易号"]],
                out_trade_no=cell[column["商户订单号"]],
                kind=kind,  # type: ignore[arg-type]  # checked just above
                subject=cell[column["商品名称"]],
                created_at=protocol.parse_china_time(cell[column["创建时间"]]),
                finished_at=protocol.parse_china_time(cell[column["完成时间"]]),
                counterparty=cell[column["对方账户"]],
                order_fen=signed_fen(cell[column["订单金额（元）"]]),
                received_fen=signed_fen(cell[column["商家实收（元）"]]),
                refund_no=cell[column["退款批次号/请求号"]],
                fee_fen=signed_fen(cell[column["服务费（元）"]]),
            )
        )
    return lines
