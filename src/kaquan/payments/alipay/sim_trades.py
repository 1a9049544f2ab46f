"""The simulated Alipay's own records: trades, their refunds, and the errors its gateway answers with."""

from dataclasses import dataclass, field
from datetime import datetime

WAIT, SUCCESS, FINISHED, CLOSED = "WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"


class TradeNotPayable(RuntimeError):
    """The buyer tried to pay a trade Alipay no longer takes money for (paid, closed or expired)."""


class Refused(Exception):
    """A request the gateway answers with an error code instead of doing it."""

    def __init__(self, code: str, msg: str, sub_code: str, sub_msg: str) -> None:
        super().__init__(sub_code)
        self.body = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def invalid(sub_code: str, sub_msg: str) -> Refused:
    return Refused("40002", "Invalid Arguments", sub_code, sub_msg)


def business(sub_code: str, sub_msg: str) -> Refused:
    return Refused("40004", "Business Failed", sub_code, sub_msg)


@dataclass
class SimRefund:
    out_request_no: str
    amount_fen: int
    refunded_total_fen: int  # the trade's refunded total once this refund went through
    reason: str
    at: datetime


@dataclass
class SimTrade:
    out_trade_no: str
    trade_no: str
    total_fen: int
    subject: str
    product_code: str
    notify_url: str
    return_url: str
    created_at: datetime
    expires_at: datetime
    buyer_id: str
    buyer_logon_id: str
    status: str = WAIT
    qr_code: str = ""
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    closed_noticed: bool = False
    refunds: dict[str, SimRefund] = field(default_factory=dict)

    @property
    def refunded_fen(self) -> int:
        return sum(refund.amount_fen for refund in self.refunds.values())
