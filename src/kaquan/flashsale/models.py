"""Flash-sale tables: events and purchases.

An event's allotment is not a stock state of its own: the codes are `reserved` in
the inventory under the holder id `-event.id` (a negative number no order id can
take), so the stock equation keeps adding up. `Purchase` is the flash sale's own
record of who won what, one row per buyer request, written in the same transaction
as the order: per-buyer counts and tickets are read from it, never from a cache.
"""

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

EVENT_STATUSES = ("scheduled", "live", "ended")


class Event(Base):
    __tablename__ = "flashsale_events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("stock >= 1 AND allotted >= 0 AND released >= 0", name="stock_valid"),
        CheckConstraint("per_buyer_limit >= 1", name="limit_positive"),
        CheckConstraint("per_ip_limit >= 1 AND per_device_limit >= 1", name="client_limits_positive"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in EVENT_STATUSES)})", name="status_known"),
        Index("ix_flashsale_events_status", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sku_id: Mapped[int] = mapped_column(ForeignKey("catalog_skus.id"))
    starts_at = mapped_column(UTCDateTime(), nullable=False)
    ends_at = mapped_column(UTCDateTime(), nullable=False)
    # Units asked for; `allotted` is what the start actually took from central stock.
    stock: Mapped[int] = mapped_column(Integer)
    allotted: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
    price_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    per_buyer_limit: Mapped[int] = mapped_column(Integer)
    # A purchase must carry a verified contact (buyers.verify), which is then the buyer the limit counts.
    requires_verified_buyer: Mapped[bool] = mapped_column(Boolean, default=False)
    # Most units won per client address (IPv6: per /64) and per device cookie.
    per_ip_limit: Mapped[int] = mapped_column(Integer)
    per_device_limit: Mapped[int] = mapped_column(Integer)
    # A channel code the event is restricted to; None: every channel.
    channel: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime(), nullable=False)
    started_at = mapped_column(UTCDateTime(), nullable=True)
    ended_at = mapped_column(UTCDateTime(), nullable=True)

    @property
    def holder_id(self) -> int:
        """The opaque holder id the event's allotment is reserved under in the inventory."""
        return holder_of(self.id)


def holder_of(event_id: int) -> int:
    return -event_id


class Purchase(Base):
    """One buyer request that won: `key` is derived from (device, buyer, request id), unique per event.

    `ip_tag` and `device_tag` are the digests the gate counted (keys.ip_tag, keys.device_tag), so the
    per-address and per-device counts can be re-derived from here like the per-buyer ones.
    """

    __tablename__ = "flashsale_purchases"
    __table_args__ = (
        UniqueConstraint("event_id", "key"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        Index("ix_flashsale_purchases_buyer", "event_id", "buyer"),
        Index("ix_flashsale_purchases_ip_tag", "event_id", "ip_tag"),
        Index("ix_flashsale_purchases_device_tag", "event_id", "device_tag"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("flashsale_events.id"))
    key: Mapped[str] = mapped_column(String(64))
    buyer: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int] = mapped_column(BigId)
    order_number: Mapped[str] = mapped_column(String(32))
    ip_tag: Mapped[str | None] = mapped_column(String(32))
    device_tag: Mapped[str | None] = mapped_column(String(32))
    created_at = mapped_column(UTCDateTime(), nullable=False)
