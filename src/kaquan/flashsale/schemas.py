"""Request and response shapes of the flash-sale APIs (admin and buyer)."""

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kaquan.flashsale.models import Event
from kaquan.kit.bounds import Int64

# Defaults of the per-address and per-device limits, as multiples of the per-buyer limit: an address is
# often shared (offices, campuses, carrier NAT), a device less so (a family's phone).
IP_LIMIT_FACTOR = 10
DEVICE_LIMIT_FACTOR = 2


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200, description="shown to buyers; default: the SKU's name")
    sku: str = Field(min_length=1, max_length=64, description="SKU code or id (unique-code SKUs only)")
    starts_at: AwareDatetime = Field(description="ISO 8601 with a time zone; now or earlier starts at once")
    ends_at: AwareDatetime
    stock: int = Field(ge=1, le=10_000_000, description="units taken from central stock for the event")
    price_minor: int = Field(ge=0, le=2**31 - 1, description="event price per unit, minor units, SKU currency")
    per_buyer_limit: int = Field(default=1, ge=1, le=10_000, description="most units one buyer may win")
    channel: str | None = Field(default=None, min_length=1, max_length=64, description="only this channel may buy")
    requires_verified_buyer: bool | None = Field(
        default=None,
        description="a purchase must carry a verified-contact buyer token, and the limit counts that contact;"
        " default: on when the shop can send codes (e-mail, SMS or dev codes configured)",
    )
    per_ip_limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description=f"most units won per client address (IPv6: per /64); default: {IP_LIMIT_FACTOR} × per_buyer_limit",
    )
    per_device_limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description=f"most units won per device cookie; default: {DEVICE_LIMIT_FACTOR} × per_buyer_limit",
    )


class EventOut(BaseModel):
    """An event as the operator sees it; the counters are filled in by the detail view."""

    id: int
    name: str
    sku_id: int
    starts_at: datetime
    ends_at: datetime
    stock: int
    allotted: int
    released: int
    price_minor: int
    currency: str
    per_buyer_limit: int
    requires_verified_buyer: bool
    per_ip_limit: int
    per_device_limit: int
    channel: str | None
    status: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    sold: int | None = Field(default=None, description="units won by buyers")
    purchases: int | None = Field(default=None, description="winning purchases")
    held: int | None = Field(default=None, description="units the event still holds in the inventory")
    gate_tokens: int | None = Field(default=None, description="units the gate still admits (None: gate not loaded)")
    gate_open: bool | None = None

    @classmethod
    def of(cls, event: Event) -> "EventOut":
        return cls(
            id=event.id,
            name=event.name,
            sku_id=event.sku_id,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            stock=event.stock,
            allotted=event.allotted,
            released=event.released,
            price_minor=event.price_minor,
            currency=event.currency,
            per_buyer_limit=event.per_buyer_limit,
            requires_verified_buyer=event.requires_verified_buyer,
            per_ip_limit=event.per_ip_limit,
            per_device_limit=event.per_device_limit,
            channel=event.channel,
            status=event.status,
            created_by=event.created_by,
            created_at=event.created_at,
            started_at=event.started_at,
            ended_at=event.ended_at,
        )


class PublicEventOut(BaseModel):
    """An event as a buyer sees it; `remaining` comes from the gate and is for display only."""

    id: int
    name: str
    sku_id: int
    starts_at: datetime
    ends_at: datetime
    price_minor: int
    currency: str
    per_buyer_limit: int
    requires_verified_buyer: bool = Field(description="buy with a buyer token from POST /api/buyers/verify/confirm")
    status: Literal["scheduled", "live", "ended"]
    remaining: int | None


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buyer: str = Field(
        min_length=1,
        max_length=200,
        description="the buyer's account, phone or email; ignored when a buyer token proves a verified contact",
    )
    quantity: Int64 = 1
    request_id: str = Field(
        min_length=1, max_length=128, description="idempotency key chosen by the client: a retry never buys twice"
    )


Result = Literal["won", "sold_out", "limit_reached", "queued"]


class PurchaseOut(BaseModel):
    result: Result
    ticket: str | None = Field(default=None, description="poll GET /api/flash/tickets/{ticket} while queued")
    order_no: str | None = None
    lookup_secret: str | None = None
    pay_url: str | None = None
    quantity: int | None = None
    total_minor: int | None = None
    currency: str | None = None
    pay_before: datetime | None = Field(default=None, description="the won codes are held until then")
