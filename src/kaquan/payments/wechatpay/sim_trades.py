"""The simulated WeChat Pay platform's records (trades and refunds) and the trade bill drawn from them."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from kaquan.payments.wechatpay import protocol


@dataclass
class SimTrade:
    appid: str
    mchid: str
    out_trade_no: str
    trade_type: str  # NATIVE, MWEB (H5) or JSAPI
    description: str
    attach: str
    notify_url: str
    total: int
    time_expire: datetime
    prepay_id: str
    openid: str | None = None
    state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: datetime | None = None


@dataclass
class SimRefund:
    refund_id: str
    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    reason: str
    notify_url: str | None
    created_at: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None


def bill_lines(
    trades: Mapping[str, SimTrade], refunds: Iterable[SimRefund], *, day: date, bill_type: str, fee_rate_bp: int
) -> list[protocol.BillLine]:
    """The lines of the trade bill (ALL, SUCCESS or REFUND) for one Beijing day, in time order."""
    lines: list[protocol.BillLine] = []

    def on_day(moment: datetime) -> bool:
        return moment.astimezone(protocol.BEIJING).date() == day

    for trade in trades.values():
        if bill_type == "REFUND" or trade.transaction_id is None or trade.success_time is None:
            continue
        if on_day(trade.success_time):
            lines.append(
                protocol.BillLine(
                    traded_at=trade.success_time,
                    appid=trade.appid,
                    mchid=trade.mchid,
                    transaction_id=trade.transaction_id,
                    out_trade_no=trade.out_trade_no,
                    openid=trade.openid or "",
                    trade_type=trade.trade_type,
                    trade_state="SUCCESS",
                    settlement_minor=trade.total,
                    description=trade.description,
                    attach=trade.attach,
                    fee_minor=protocol.fee_of(trade.total, fee_rate_bp),
                    fee_rate_bp=fee_rate_bp,
                    order_minor=trade.total,
                )
            )
    for refund in refunds:
        if bill_type == "SUCCESS" or refund.status != "SUCCESS" or refund.success_time is None:
            continue
        if on_day(refund.success_time):
            trade = trades[refund.out_trade_no]
            lines.append(
                protocol.BillLine(
                    traded_at=refund.success_time,
                    appid=trade.appid,
                    mchid=trade.mchid,
                    transaction_id=refund.transaction_id,
                    out_trade_no=refund.out_trade_no,
                    openid=trade.openid or "",
                    trade_type=trade.trade_type,
                    trade_state="REFUND",
                    settlement_minor=0,
                    description=trade.description,
                    attach=trade.attach,
                    fee_minor=-protocol.fee_of(refund.refund, fee_rate_bp),
                    fee_rate_bp=fee_rate_bp,
                    order_minor=0,
                    refund_id=refund.refund_id,
                    out_refund_no=refund.out_refund_no,
                    refund_minor=refund.refund,
                    refund_requested_minor=refund.refund,
                    refund_type="ORIGINAL",
                    refund_status="SUCCESS",
                )
            )
    return sorted(lines, key=lambda line: line.traded_at)
