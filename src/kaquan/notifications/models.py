"""Notifications' table: one row per notice sent, keyed by what it tells, so it is never sent twice."""

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime


class NoticeSent(Base):
    __tablename__ = "notifications_sent"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # What the notice tells: "delivered:<order id>", "delivered:<order id>:resend:<nonce>",
    # "refunded:<order id>:<refund no>". Unique: the second attempt to send it finds the first.
    key: Mapped[str] = mapped_column(String(160), unique=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email or sms
    sent_at = mapped_column(UTCDateTime(), nullable=False)
