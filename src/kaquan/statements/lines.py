"""A statement in kaquan's terms: a header, then lines streamed in batches.

Every format's reader turns its rows into `StatementLine`s. Amounts are integer
minor units and never negative: `kind` says which way the money went. A reader
checks the file as it streams (its header row, each cell, the summary rows the
format prints at the end) and raises `StatementRejected` naming the line and
the column; the caller stores the batches inside one transaction, so a file
rejected at its last line leaves nothing behind.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import polars as pl

from kaquan.kit.errors import DomainError

LineKind = Literal["payment", "refund", "payout", "fee", "adjustment"]


class StatementLine(NamedTuple):
    """One record of a counterparty's statement.

    `identity` is the counterparty's own handle on the record (its transaction
    id, refund id, payout id, with the kind where one id names several rows),
    stable across two downloads of the same day and across overlapping
    periods: storing it once is what makes a re-import a no-op.

    An immutable named tuple rather than a frozen dataclass: a million-line
    bill builds a million of these, and a tuple is built about six times
    faster (a frozen dataclass sets each field through `object.__setattr__`).
    It also goes to a COPY or `executemany` as it is.
    """

    line_no: int  # the physical line of the file, 1-based, for messages
    identity: str
    kind: LineKind
    occurred_at: datetime  # aware, UTC: when the counterparty says the money moved
    amount_minor: int  # the gross amount paid, refunded or paid out; never negative
    fee_minor: int  # the fee charged on a payment, or given back on a refund; 0 where the format has none
    currency: str  # ISO 4217, upper case
    merchant_ref: str  # kaquan's reference: payment token (out_trade_no), marketplace order id, agent's out_order_no
    counterparty_ref: str  # the counterparty's id: transaction id, refund id, payout id
    refund_ref: str = ""  # kaquan's refund number (out_refund_no, out_request_no) on refund lines
    status: str = ""  # the counterparty's status as printed (SUCCESS, REFUND, 交易, …)
    description: str = ""


@dataclass(frozen=True)
class StatementHeader:
    """What the file says about itself, known before its first line is read."""

    source: str  # "wechatpay", "alipay", "stripe", "marketplace:<store>", "agent:<code>", "generic:<mapping>"
    account: str  # the merchant id or account the file is for; "" where the format does not say
    period_start: date | None  # the first day it covers, in the counterparty's time zone
    period_end: date | None  # the last day it covers (inclusive)
    currency: str


class Statement(Protocol):
    header: StatementHeader

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        """The lines in file order, `size` at a time; raises `StatementRejected` where the file is wrong."""
        ...


@runtime_checkable
class ColumnarStatement(Statement, Protocol):
    """A statement that can also hand out its lines as polars frames (the big formats, read by polars).

    `frames` and `batches` are one reading path: a batch is a frame made
    `StatementLine`s (`statements.frames.lines_of`), checked and rejected alike.
    """

    def frames(self, size: int = 50_000) -> Iterator[pl.DataFrame]:
        """The lines in file order as frames of `statements.frames.LINE_SCHEMA`, `size` at a time."""
        ...


class StatementRejected(DomainError):
    """The file is not the statement it claims to be, or one of its cells does not parse."""

    status = 422
    code = "statement_rejected"

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None) -> None:
        where = ", ".join(
            part for part in (f"line {line}" if line else "", f"column {column}" if column else "") if part
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.details = {"line": line, "column": column}
