"""Payments and refunds as plain rows for the modules that compare them with a provider's own records.

`reconcilable` is a SELECT, not a list: reconciliation copies it into its own
scratch table with one INSERT … SELECT, so a million payments never pass through
Python. `add_succeeded` stores succeeded payments in bulk, for benchmarks that
need a million of them without a million checkouts.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.payments.models import Payment, PaymentRefund

RECORD_COLUMNS = (
    "kind",
    "ref",
    "payment_ref",
    "txn_id",
    "amount_minor",
    "fee_minor",
    "currency",
    "status",
    "at",
)


def reconcilable(gateway: str, since: datetime, until: datetime) -> Select[tuple[object, ...]]:
    """Every payment and refund of `gateway` whose time falls in [since, until), one row each.

    Columns (`RECORD_COLUMNS`): `kind` ("payment" or "refund"); `ref`, kaquan's
    number at the provider (the payment token, i.e. out_trade_no, or the refund
    number, i.e. out_refund_no / out_request_no); `payment_ref`, the token of the
    payment a refund gives back; `txn_id`, the provider's own id (transaction id,
    refund id); `amount_minor`; `fee_minor`, the fee kaquan booked (charged on a
    payment, given back by a refund); `currency`; `status`, kaquan's
    (payments: pending, succeeded, closed, refunded; refunds: awaiting_approval …
    succeeded, failed); `at`, when it succeeded (else when it was created).
    """
    paid_at = func.coalesce(Payment.succeeded_at, Payment.created_at)
    payments = select(
        literal("payment").label("kind"),
        Payment.token.label("ref"),
        Payment.token.label("payment_ref"),
        Payment.gateway_txn_id.label("txn_id"),
        Payment.amount_minor.label("amount_minor"),
        Payment.fee_minor.label("fee_minor"),
        Payment.currency.label("currency"),
        Payment.status.label("status"),
        paid_at.label("at"),
    ).where(Payment.gateway == gateway, paid_at >= since, paid_at < until)
    refunded_at = func.coalesce(PaymentRefund.finished_at, PaymentRefund.created_at)
    refunds = (
        select(
            literal("refund").label("kind"),
            PaymentRefund.refund_no.label("ref"),
            Payment.token.label("payment_ref"),
            PaymentRefund.provider_ref.label("txn_id"),
            PaymentRefund.amount_minor.label("amount_minor"),
            PaymentRefund.fee_back_minor.label("fee_minor"),
            PaymentRefund.currency.label("currency"),
            PaymentRefund.status.label("status"),
            refunded_at.label("at"),
        )
        .join(Payment, Payment.id == PaymentRefund.payment_id)
        .where(Payment.gateway == gateway, refunded_at >= since, refunded_at < until)
    )
    return select(union_all(payments, refunds).subquery())


@dataclass(frozen=True)
class SucceededPayment:
    """A payment to store as already paid (benchmarks): no order, no checkout, no booking."""

    token: str
    order_id: int
    gateway: str
    amount_minor: int
    currency: str
    fee_minor: int
    txn_id: str
    succeeded_at: datetime


async def add_succeeded(db: Database, session: AsyncSession, payments: Sequence[SucceededPayment]) -> None:
    """Store succeeded payments in bulk (COPY on PostgreSQL), in the caller's transaction."""
    columns = (
        "token",
        "order_id",
        "gateway",
        "amount_minor",
        "currency",
        "status",
        "gateway_txn_id",
        "fee_minor",
        "refunded_minor",
        "created_at",
        "succeeded_at",
    )
    rows = [
        (
            p.token,
            p.order_id,
            p.gateway,
            p.amount_minor,
            p.currency,
            "succeeded",
            p.txn_id,
            p.fee_minor,
            0,
            db.copy_datetime(p.succeeded_at),
            db.copy_datetime(p.succeeded_at),
        )
        for p in payments
    ]
    await db.copy_rows(session, Payment.__table__, columns, rows)  # type: ignore[arg-type]
