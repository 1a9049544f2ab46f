"""Redemption tables: the one redemption (核销) of each voucher code.

The table keeps its name (`inventory_redemptions`) from when redemption lived in inventory.
"""

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime


class Redemption(Base):
    """The one redemption (核销) of a voucher code: when, by whom, where, under which client nonce.

    The unique `code_id` is the database's own guarantee that a code is redeemed once.
    `redeemed_at` is the server's time of recording; an offline scan also carries the
    time the device says it happened (`redeemed_offline_at`) and is flagged `offline`.
    """

    __tablename__ = "inventory_redemptions"
    __table_args__ = (CheckConstraint("offline = (redeemed_offline_at IS NOT NULL)", name="offline_has_time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code_id: Mapped[int] = mapped_column(BigId, unique=True)
    sku_id: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int | None] = mapped_column(BigId)
    nonce: Mapped[str] = mapped_column(String(64))
    redeemed_at = mapped_column(UTCDateTime(), nullable=False, index=True)
    redeemed_offline_at = mapped_column(UTCDateTime(), nullable=True)
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(200))
