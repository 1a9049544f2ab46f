"""Response and request shapes of the JSON APIs."""

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from kaquan.inventory import DeliveredCode, DeliveredRange
from kaquan.kit.bounds import INT32_MAX, INT64_MAX, Int64
from kaquan.orders.service import Order, OrderView


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, description="SKU code or id")
    quantity: Int64
    contact: str = Field(default="", max_length=200)


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=32)
    secret: str = Field(min_length=1, max_length=64)


class CodeOut(BaseModel):
    card_no: str | None
    secret: str
    expires_on: str | None

    @classmethod
    def of(cls, code: DeliveredCode) -> "CodeOut":
        return cls(card_no=code.card_no, secret=code.secret, expires_on=code.expires_on)


class RangeOut(BaseModel):
    first: str
    last: str
    count: int

    @classmethod
    def of(cls, serials: DeliveredRange) -> "RangeOut":
        return cls(first=serials.first_code, last=serials.last_code, count=serials.count)


class OrderOut(BaseModel):
    number: str
    status: str
    sku_id: int
    quantity: int
    unit_price_minor: int
    total_minor: int
    currency: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    delivered_at: datetime | None
    lookup_secret: str | None = None
    pay_url: str | None = None
    codes: list[CodeOut] = []
    serial_ranges: list[RangeOut] = []

    @classmethod
    def of(
        cls,
        order: Order,
        *,
        view: OrderView | None = None,
        lookup_secret: str | None = None,
        pay_url: str | None = None,
    ) -> "OrderOut":
        return cls(
            number=order.number,
            status=order.status,
            sku_id=order.sku_id,
            quantity=order.quantity,
            unit_price_minor=order.unit_price_minor,
            total_minor=order.total_minor,
            currency=order.currency,
            created_at=order.created_at,
            expires_at=order.expires_at,
            paid_at=order.paid_at,
            delivered_at=order.delivered_at,
            lookup_secret=lookup_secret,
            pay_url=pay_url,
            codes=[CodeOut.of(c) for c in view.codes] if view else [],
            serial_ranges=[RangeOut.of(r) for r in view.ranges] if view else [],
        )


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="", max_length=32)
    width: int = Field(ge=1, le=18)
    start: int = Field(ge=0, le=INT64_MAX)
    end: int = Field(ge=0, le=INT64_MAX)
    supplier: str = Field(default="", max_length=200)
    unit_cost_minor: int = Field(default=0, ge=0, le=INT32_MAX)
    expires_on: date | None = None
    warehouse: str = "main"


class ImportOut(BaseModel):
    batch_id: int | None
    imported: int
    skipped: list[dict[str, object]] = Field(description="the first 200 lines left out, in line order")
    encoding: str
    layout: str
    skipped_total: int = Field(description="every line left out, listed or not")


class StockOut(BaseModel):
    sku_id: int
    warehouse: str
    imported: int
    available: int
    reserved: int
    sold: int
    redeemed: int
    voided: int
    adds_up: bool


class SegmentOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: int
    quantity: int


class PaymentNotifyOut(BaseModel):
    """A gateway's notification, taken: `outcome` is delivered, duplicate, unfulfilled_refunding, ..."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    outcome: str
