from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime, partial_index

ORDER_STATUSES = (
    "pending_payment",
    "processing",
    "paid",
    "delivered",
    "cancelled",
    "expired",
    "paid_unfulfilled",
    "refunded",
)


def _unpaid_index(name: str, column: str) -> Index:
    """A partial index over unpaid orders only: small, whatever the order history."""
    return partial_index(name, column, where="status = 'pending_payment'")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # Idempotency per channel and source: two agents may both use out_order_no "1001". The key leads,
        # so looking up a batch of keys probes the index per key, even for an agent with a million orders.
        UniqueConstraint("idempotency_key", "channel", "source"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("total_minor = unit_price_minor * quantity", name="total_is_price_times_quantity"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in ORDER_STATUSES)})", name="status_known"),
        Index("ix_orders_status_expires", "status", "expires_at"),
        # What one client holds unpaid, by each identity (`orders.holds`), and what a SKU's unpaid orders hold.
        _unpaid_index("ix_orders_unpaid_ip", "buyer_ip"),
        _unpaid_index("ix_orders_unpaid_source", "source"),
        _unpaid_index("ix_orders_unpaid_contact", "contact"),
        _unpaid_index("ix_orders_unpaid_sku", "sku_id"),
        # A signed-in buyer's order history, newest first.
        Index("ix_orders_buyer_contact", "buyer_contact", "id"),
        # The console's order list (`orders.listing`): newest first within one status, channel, SKU or contact,
        # and a range of creation times.
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_channel_id", "channel", "id"),
        Index("ix_orders_sku_id_id", "sku_id", "id"),
        Index("ix_orders_contact_lower", text("lower(contact)"), "id"),
        Index("ix_orders_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Who within the channel, the scope of its idempotency keys: an agent's id for the open API, a store for a
    # marketplace, a flash sale's event, the keyed hash of the client's own token for the shop.
    source: Mapped[str] = mapped_column(String(64), default="", server_default="")
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    sku_id: Mapped[int] = mapped_column(Integer, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # What the caller asked for when it accepted a partial fill; None: the same as `quantity`.
    requested_quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(Integer)
    total_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))
    contact: Mapped[str] = mapped_column(String(200), default="")
    buyer_ip: Mapped[str | None] = mapped_column(String(64))
    # The contact a buyer proved by a one-time code (buyers.verify) when the order was placed signed in;
    # None for a guest. Only these orders appear in a buyer's history.
    buyer_contact: Mapped[str | None] = mapped_column(String(254))
    # The buyer's language at order time ("zh" or "en"): the language of its notifications.
    lang: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")
    created_at = mapped_column(UTCDateTime(), nullable=False)
    expires_at = mapped_column(UTCDateTime(), nullable=False)
    paid_at = mapped_column(UTCDateTime(), nullable=True)
    delivered_at = mapped_column(UTCDateTime(), nullable=True)
    closed_at = mapped_column(UTCDateTime(), nullable=True)


class OrderEvent(Base):
    """Every status change of an order, in order: the story support reads."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    at = mapped_column(UTCDateTime(), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(300), default="")


class OrderNote(Base):
    """A note staff wrote on an order: for the console only, never shown to the buyer (unlike `OrderEvent`)."""

    __tablename__ = "order_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    at = mapped_column(UTCDateTime(), nullable=False)
    author: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(String(1000))
