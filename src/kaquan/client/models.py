"""What the open API answers, as frozen dataclasses, and the two errors the SDK raises."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal


class ApiError(Exception):
    """kaquan answered with an error: the HTTP status and the body's stable `code`, `message` and `details`.

    `details["retry_after"]` (seconds) accompanies `rate_limited` (429) and `busy` (503). Status 0 marks
    what the SDK finds itself: `undecryptable_code`, a code field that does not open with this key.
    """

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


@dataclass(frozen=True)
class NewOrder:
    """One order of a batch (`place_orders`): the same fields as `place_order`."""

    out_order_no: str
    sku: str
    quantity: int
    mode: Literal["sync", "async"] = "sync"
    allow_partial: bool = False


class CallbackRejected(Exception):
    """A callback did not pass verification; answer it with a 4xx (kaquan's real callbacks always pass)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Code:
    """One delivered code, already decrypted."""

    card_no: str | None
    secret: str = field(repr=False)
    expires_on: date | None


@dataclass(frozen=True)
class Order:
    order_no: str
    out_order_no: str
    status: str
    sku: str
    requested_quantity: int
    quantity: int
    unit_price_minor: int
    total_minor: int
    currency: str
    created_at: datetime
    delivered_at: datetime | None
    codes: tuple[Code, ...]


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price_minor: int
    currency: str
    in_stock: bool
    available: int
    max_per_order: int


@dataclass(frozen=True)
class Balance:
    currency: str
    balance_minor: int
    credit_limit_minor: int
    available_minor: int


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of the balance; `reference` is the order_no of an order or refund, a top-up's own reference."""

    id: int
    at: datetime
    kind: str
    amount_minor: int
    reference: str
    memo: str
    out_order_no: str | None = None


@dataclass(frozen=True)
class StatementLine:
    """One movement of the balance on a statement; amounts signed as they moved it (orders negative)."""

    at: datetime
    kind: str  # order, refund, topup, adjustment
    reference: str
    order_no: str | None
    gross_minor: int
    fee_minor: int
    amount_minor: int
    in_period: bool  # false: a sale of an earlier period, held back then and settled now
    settled: bool  # counts towards this statement's commission (false: held back for refunds)


@dataclass(frozen=True)
class Statement:
    """A confirmed settlement statement (结算单). `figures` are in minor units, signed as they moved the balance:
    opening + sales + refunds + fees + commissions + top_ups + adjustments + payouts = closing.
    `lines` is None in a list (`statements()`), every line when fetched alone (`statement(id)`)."""

    id: int
    counterparty: str
    status: str
    currency: str
    first_day: date
    last_day: date
    period_start: datetime
    period_end: datetime
    figures: Mapping[str, int]
    created_at: datetime
    confirmed_at: datetime | None
    lines: tuple[StatementLine, ...] | None = None


@dataclass(frozen=True)
class StatementFile:
    """A statement downloaded as CSV, XLSX or PDF: its bytes, media type and the file name kaquan suggests."""

    filename: str
    media_type: str
    content: bytes = field(repr=False)


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def order_from(raw: Mapping[str, Any], open_field: Callable[[str, str], str]) -> Order:
    """An Order from its JSON; `open_field(value, order_no)` decrypts one code field."""
    number = raw["order_no"]
    codes = tuple(
        Code(
            card_no=None if code.get("card_no") is None else open_field(code["card_no"], number),
            secret=open_field(code["secret"], number),
            expires_on=None if code.get("expires_on") is None else date.fromisoformat(code["expires_on"]),
        )
        for code in raw.get("codes") or ()
    )
    return Order(
        order_no=number,
        out_order_no=raw["out_order_no"],
        status=raw["status"],
        sku=raw["sku"],
        requested_quantity=raw["requested_quantity"],
        quantity=raw["quantity"],
        unit_price_minor=raw["unit_price_minor"],
        total_minor=raw["total_minor"],
        currency=raw["currency"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        delivered_at=_when(raw.get("delivered_at")),
        codes=codes,
    )


def product_from(raw: Mapping[str, Any]) -> Product:
    return Product(
        sku=raw["sku"],
        name=raw["name"],
        price_minor=raw["price_minor"],
        currency=raw["currency"],
        in_stock=raw["in_stock"],
        available=raw["available"],
        max_per_order=raw["max_per_order"],
    )


def balance_from(raw: Mapping[str, Any]) -> Balance:
    return Balance(
        currency=raw["currency"],
        balance_minor=raw["balance_minor"],
        credit_limit_minor=raw["credit_limit_minor"],
        available_minor=raw["available_minor"],
    )


def entry_from(raw: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        id=raw["id"],
        at=datetime.fromisoformat(raw["at"]),
        kind=raw["kind"],
        amount_minor=raw["amount_minor"],
        reference=raw.get("reference") or "",
        memo=raw.get("memo") or "",
        out_order_no=raw.get("out_order_no"),
    )


def statement_line_from(raw: Mapping[str, Any]) -> StatementLine:
    return StatementLine(
        at=datetime.fromisoformat(raw["at"]),
        kind=raw["kind"],
        reference=raw.get("reference") or "",
        order_no=raw.get("order_no"),
        gross_minor=raw["gross_minor"],
        fee_minor=raw["fee_minor"],
        amount_minor=raw["amount_minor"],
        in_period=raw["in_period"],
        settled=raw["settled"],
    )


def statement_from(raw: Mapping[str, Any]) -> Statement:
    lines = raw.get("lines")
    return Statement(
        id=raw["id"],
        counterparty=raw["counterparty"],
        status=raw["status"],
        currency=raw["currency"],
        first_day=date.fromisoformat(raw["first_day"]),
        last_day=date.fromisoformat(raw["last_day"]),
        period_start=datetime.fromisoformat(raw["period_start"]),
        period_end=datetime.fromisoformat(raw["period_end"]),
        figures={name: int(value) for name, value in raw["figures"].items()},
        created_at=datetime.fromisoformat(raw["created_at"]),
        confirmed_at=_when(raw.get("confirmed_at")),
        lines=None if lines is None else tuple(statement_line_from(line) for line in lines),
    )
