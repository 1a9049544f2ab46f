from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, Integer, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

PAYMENT_STATUSES = ("pending", "succeeded", "closed", "refunded")
REFUND_STATUSES = ("awaiting_approval", "requested", "processing", "succeeded", "failed", "rejected")
DISPUTE_STATUSES = ("open", "won", "lost", "warning_closed", "prevented")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(Base):
    """One attempt to pay one order through one gateway.

    `pending` until the provider says paid (`succeeded`) or the trade is closed
    unpaid (`closed`); `refunded` once refunds add up to the whole amount.
    `action` is what the buyer was shown to pay (a QR text, a URL), kept so a
    reload shows the same trade instead of opening another.
    """

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refunds_within_amount"),
        CheckConstraint("fee_minor >= 0", name="fee_not_negative"),
        CheckConstraint(_known("status", PAYMENT_STATUSES), name="status_known"),
        Index("ix_payments_status_checked", "status", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    gateway: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    gateway_txn_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    payer: Mapped[str | None] = mapped_column(String(128))
    fee_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at = mapped_column(UTCDateTime(), nullable=False)
    succeeded_at = mapped_column(UTCDateTime(), nullable=True)
    closed_at = mapped_column(UTCDateTime(), nullable=True)
    checked_at = mapped_column(UTCDateTime(), nullable=True)  # last time the provider was asked about it
    refunded_at = mapped_column(UTCDateTime(), nullable=True)


class PaymentRefund(Base):
    """Money going back through the gateway that took it: requested → processing → succeeded or failed.

    `refund_no` is kaquan's number for it at the provider, so every retry is
    the same refund there and is never paid out twice. Refunds a person asks
    for wait for a finance approval (`awaiting_approval`, or `rejected`);
    refunds kaquan makes itself (an order it could not deliver, a second
    charge) are approved by the system.
    """

    __tablename__ = "payment_refunds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("fee_back_minor >= 0", name="fee_back_not_negative"),
        CheckConstraint(_known("status", REFUND_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    refund_no: Mapped[str] = mapped_column(String(40), unique=True)
    payment_id: Mapped[int] = mapped_column(BigId, index=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    fee_back_minor: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(String(500))
    void_codes: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    created_at = mapped_column(UTCDateTime(), nullable=False)
    updated_at = mapped_column(UTCDateTime(), nullable=False)
    finished_at = mapped_column(UTCDateTime(), nullable=True)


# When a payment or refund counts as done for the books and the statements: when it succeeded (finished), else
# when it was created. Reconciliation selects a day's records by it: indexed, a day is found among years of them.
PAID_AT = func.coalesce(Payment.succeeded_at, Payment.created_at)
REFUNDED_AT = func.coalesce(PaymentRefund.finished_at, PaymentRefund.created_at)
Index("ix_payments_paid_at", PAID_AT)
Index("ix_payment_refunds_refunded_at", REFUNDED_AT)


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


class PaymentChargeback(Base):
    """A payment the buyer's bank took back (拒付): one per dispute the provider reported.

    `(gateway, dispute_id)` is unique, so a re-delivered dispute event is applied once. `chargeback_no` is
    kaquan's number for it, the ledger's reference (`chargeback:<no>`). `fee_minor` is the dispute fee the
    provider charged, `fee_back_minor` the share of the payment's fee it gave back (0: Stripe keeps it).
    `decision_id` is the risk decision the chargeback labelled fraud, when one was found.

    `status` is the dispute's outcome: `open` until the provider closes it, then `won` (the bank ruled for
    the merchant: `reinstated_minor` came back, with `fee_returned_minor` of the dispute fee), `lost`
    (final, nothing more moves), `warning_closed` (an inquiry closed without a chargeback) or `prevented`.
    """

    __tablename__ = "payment_chargebacks"
    __table_args__ = (
        UniqueConstraint("gateway", "dispute_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("fee_minor >= 0", name="fee_not_negative"),
        CheckConstraint("fee_back_minor >= 0", name="fee_back_not_negative"),
        CheckConstraint(_known("status", DISPUTE_STATUSES), name="status_known"),
        CheckConstraint("reinstated_minor >= 0", name="reinstated_not_negative"),
        CheckConstraint("fee_returned_minor >= 0", name="fee_returned_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chargeback_no: Mapped[str] = mapped_column(String(40), unique=True)
    gateway: Mapped[str] = mapped_column(String(32))
    dispute_id: Mapped[str] = mapped_column(String(128))
    payment_id: Mapped[int] = mapped_column(BigId, index=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    fee_minor: Mapped[int] = mapped_column(Integer)
    fee_back_minor: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    received_at = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    closed_at = mapped_column(UTCDateTime(), nullable=True)
    reinstated_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fee_returned_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
