from sqlalchemy import Boolean, CheckConstraint, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime


class Payment(Base):
    """One attempt to pay one order through one gateway."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("status IN ('pending', 'succeeded', 'refund_pending', 'refunded')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    gateway_txn_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    refund_ref: Mapped[str | None] = mapped_column(String(128))
    created_at = mapped_column(UTCDateTime(), nullable=False)
    succeeded_at = mapped_column(UTCDateTime(), nullable=True)
    refunded_at = mapped_column(UTCDateTime(), nullable=True)


class PaymentCallback(Base):
    """Every notification a gateway sent us, accepted or not, with the reason."""

    __tablename__ = "payment_callbacks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    received_at = mapped_column(UTCDateTime(), nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(64))
    payment_token: Mapped[str | None] = mapped_column(String(40))
    txn_id: Mapped[str | None] = mapped_column(String(128))
    body_sha256: Mapped[bytes] = mapped_column(LargeBinary)
