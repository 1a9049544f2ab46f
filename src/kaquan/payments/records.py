"""Payments and refunds as plain rows for the modules that compare them with a provider's own records.

`reconcilable` is a SELECT, not a list: reconciliation copies it into its own
scratch table with one INSERT … SELECT, so a million payments never pass through
Python. `add_payments` and `add_refunds` store payments and refunds in bulk,
for benchmarks that need a million of them without a million checkouts.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Integer, Select, String, Table, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.kit.models import UTCDateTime
from kaquan.kit.set_work import drop_scratch_table, refresh_statistics, scratch_table
from kaquan.payments.models import PAID_AT, REFUNDED_AT, Payment, PaymentRefund

_PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]
_REFUNDS: Table = PaymentRefund.__table__  # type: ignore[assignment]

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


def reconcilable(gateway: str | None, since: datetime, until: datetime) -> Select[tuple[object, ...]]:
    """Every payment and refund of `gateway` (None: of every gateway) whose time falls in [since, until), one row each.

    Columns (`RECORD_COLUMNS`): `kind` ("payment" or "refund"); `ref`, kaquan's
    number at the provider (the payment token, i.e. out_trade_no, or the refund
    number, i.e. out_refund_no / out_request_no); `payment_ref`, the token of the
    payment a refund gives back; `txn_id`, the provider's own id (transaction id,
    refund id); `amount_minor`; `fee_minor`, the fee kaquan booked (charged on a
    payment, given back by a refund); `currency`; `status`, kaquan's
    (payments: pending, succeeded, closed, refunded; refunds: awaiting_approval …
    succeeded, failed); `at`, when it succeeded (else when it was created).
    """
    paid_at = PAID_AT
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
    ).where(paid_at >= since, paid_at < until)
    if gateway is not None:
        payments = payments.where(Payment.gateway == gateway)
    refunded_at = REFUNDED_AT
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
        .where(refunded_at >= since, refunded_at < until)
    )
    if gateway is not None:
        refunds = refunds.where(Payment.gateway == gateway)
    return select(union_all(payments, refunds).subquery())


@dataclass(frozen=True)
class BulkPayment:
    """A payment to store as the provider left it (benchmarks): no order row, no checkout, no booking."""

    token: str
    order_id: int
    gateway: str
    amount_minor: int
    currency: str
    fee_minor: int
    txn_id: str
    at: datetime  # when it succeeded (or was closed)
    status: str = "succeeded"  # or "closed": the trade was never paid


@dataclass(frozen=True)
class BulkRefund:
    """A completed refund of a payment stored by `add_payments`."""

    refund_no: str
    payment_token: str
    amount_minor: int
    currency: str
    fee_back_minor: int
    provider_ref: str
    at: datetime


_PAYMENT_COLUMNS = (
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
    "closed_at",
)
_REFUND_COLUMNS = ("refund_no", "payment_token", "amount_minor", "currency", "fee_back_minor", "provider_ref", "at")


async def add_payments(db: Database, session: AsyncSession, payments: Sequence[BulkPayment]) -> None:
    """Store payments in bulk (COPY on PostgreSQL), in the caller's transaction; for benchmarks' setup."""
    rows = []
    for p in payments:
        if p.status not in ("succeeded", "closed"):
            raise ValueError(f"a bulk payment is succeeded or closed, not {p.status!r}")
        at = db.copy_datetime(p.at)
        paid = p.status == "succeeded"
        rows.append(
            (
                p.token,
                p.order_id,
                p.gateway,
                p.amount_minor,
                p.currency,
                p.status,
                p.txn_id if paid else None,
                p.fee_minor if paid else 0,
                0,
                at,
                at if paid else None,
                None if paid else at,
            )
        )
    await db.copy_rows(session, _PAYMENTS, _PAYMENT_COLUMNS, rows)


async def add_refunds(db: Database, session: AsyncSession, refunds: Sequence[BulkRefund]) -> None:
    """Store completed refunds of payments stored before, in bulk; the payment is found by its token."""
    staged = await scratch_table(
        session,
        "payments_bulk_refunds",
        Column("refund_no", String(40), nullable=False),
        Column("payment_token", String(40), nullable=False),
        Column("amount_minor", Integer, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("fee_back_minor", Integer, nullable=False),
        Column("provider_ref", String(128), nullable=False),
        Column("at", UTCDateTime(), nullable=False),
    )
    rows = [
        (
            r.refund_no,
            r.payment_token,
            r.amount_minor,
            r.currency,
            r.fee_back_minor,
            r.provider_ref,
            db.copy_datetime(r.at),
        )
        for r in refunds
    ]
    await db.copy_rows(session, staged, _REFUND_COLUMNS, rows)
    s = staged.c
    chosen = select(
        s.refund_no,
        Payment.id,
        Payment.order_id,
        s.amount_minor,
        s.currency,
        s.fee_back_minor,
        literal("bulk"),
        literal("succeeded"),
        literal(1),
        s.provider_ref,
        literal(False),
        literal("system"),
        s.at,
        s.at,
        s.at,
    ).join(Payment, Payment.token == s.payment_token)
    names = [
        "refund_no",
        "payment_id",
        "order_id",
        "amount_minor",
        "currency",
        "fee_back_minor",
        "reason",
        "status",
        "attempts",
        "provider_ref",
        "void_codes",
        "requested_by",
        "created_at",
        "updated_at",
        "finished_at",
    ]
    await session.execute(insert(_REFUNDS).from_select(names, chosen))
    await drop_scratch_table(session, staged)


async def after_bulk(session: AsyncSession) -> None:
    """Refresh the planner's view of payments and refunds after `add_payments` / `add_refunds` stored many."""
    await refresh_statistics(session, _PAYMENTS)
    await refresh_statistics(session, _REFUNDS)
