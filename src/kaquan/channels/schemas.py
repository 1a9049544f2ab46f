"""The open API's wire types: every answer of /open/v1 and every callback payload, in one place.

The routes (`kaquan.web.open_api`) return these models and the callbacks store
`OrderEventData` dumped by the same models, so an order reads the same in an
answer and in a callback, and `/openapi.json` publishes exactly what is sent.

Times are RFC 3339 in UTC with a `Z` and exactly three fraction digits
(`2026-11-25T08:00:00.000Z`), truncated to the millisecond: an order listed by
time is never shown later than it was created, so a `since` equal to a shown
time includes that order. Paging never depends on times (cursors are ids).
"""

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from kaquan.orders.service import Order


def rfc3339(moment: datetime) -> str:
    """`2026-11-25T08:00:00.123Z`: UTC, milliseconds (truncated), `Z`; the one time format of the open API."""
    if moment.tzinfo is None:
        raise ValueError("an open API time must be aware (UTC)")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
UtcTime = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": TIME_PATTERN, "examples": ["2026-11-25T08:00:00.000Z"]}
    ),
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentCodeOut(_Out):
    """One code, each field encrypted for the key that signed the request (see docs/open-api.md)."""

    card_no: str | None
    secret: str
    expires_on: date | None


OrderStatus = Literal["processing", "delivered", "refunded", "failed"]


class AgentOrderSummary(_Out):
    """An order without its codes: in order lists and in callbacks."""

    order_no: str
    out_order_no: str
    status: OrderStatus
    sku: str
    requested_quantity: int
    quantity: int
    unit_price_minor: int
    total_minor: int
    currency: str
    created_at: UtcTime
    delivered_at: UtcTime | None


class AgentOrderOut(AgentOrderSummary):
    """An order with its codes (`[]` unless delivered): the answer to placing or looking up one order."""

    codes: list[AgentCodeOut]


def order_summary(order: Order, sku_code: str) -> AgentOrderSummary:
    return AgentOrderSummary(
        order_no=order.number,
        out_order_no=order.idempotency_key,
        status=order.status,
        sku=sku_code,
        requested_quantity=order.requested_quantity or order.quantity,
        quantity=order.quantity,
        unit_price_minor=order.unit_price_minor,
        total_minor=order.total_minor,
        currency=order.currency,
        created_at=order.created_at,
        delivered_at=order.delivered_at,
    )


class MarketplaceOrderOut(_Out):
    """A pushed marketplace order, its codes encrypted for the store (key id = the store code)."""

    order_no: str
    marketplace_order_id: str
    status: str
    sku: str
    quantity: int
    unit_price_minor: int
    total_minor: int
    fee_minor: int
    currency: str
    codes: list[AgentCodeOut]


class OrderEnvelope(_Out):
    order: AgentOrderOut


class ErrorDetail(_Out):
    code: str
    message: str
    details: dict[str, object]


class AnswerErrorDetail(ErrorDetail):
    request_id: str


class ErrorOut(_Out):
    """Every error answer: `{"error": {"code", "message", "details", "request_id"}}`."""

    error: AnswerErrorDetail


class BatchOrderPlaced(_Out):
    status: Literal[200, 201]
    order: AgentOrderOut


class BatchOrderRefused(_Out):
    status: int
    error: ErrorDetail


class BatchOut(_Out):
    results: list[BatchOrderPlaced | BatchOrderRefused]


class OrdersPage(_Out):
    orders: list[AgentOrderSummary]
    next_cursor: str | None


class AgentProductOut(_Out):
    sku: str
    name: str
    price_minor: int
    currency: str
    in_stock: bool
    available: int
    max_per_order: int


class AgentProductsOut(_Out):
    products: list[AgentProductOut]


class BalanceOut(_Out):
    currency: str
    balance_minor: int
    credit_limit_minor: int
    available_minor: int


class LedgerEntryOut(_Out):
    """One movement of the balance; `out_order_no` names the order of an `order` or `refund` entry, else null."""

    id: int
    at: UtcTime
    kind: str
    amount_minor: int
    reference: str
    memo: str
    out_order_no: str | None


class LedgerPage(_Out):
    entries: list[LedgerEntryOut]
    next_cursor: str | None


class OrderEventData(_Out):
    """The `data` of every `order.*` callback: the order as it stands, without codes."""

    order: AgentOrderSummary


def order_event_data(order: Order, sku_code: str) -> dict[str, object]:
    """A callback's stored `data`, dumped once by the same model the open API answers with."""
    return OrderEventData(order=order_summary(order, sku_code)).model_dump(mode="json")


class CallbackEvent(_Out):
    """The body of a callback POST (Standard Webhooks): its `id` is also its `webhook-id` header."""

    id: str
    type: str
    timestamp: UtcTime
    data: OrderEventData
