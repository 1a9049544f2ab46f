"""Applying what a provider says about a payment: paid, closed unpaid, or a refund done.

`receive` is a boundary like an HTTP handler: it owns its transactions,
because a refused notification must be logged even though nothing else may
change. The worker's active query (`sweeps`) applies what it learns through
`apply`, the very path a notification takes, so a lost notification and a
received one end the same way.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.payments import chargebacks, refunds
from kaquan.payments.errors import AmountMismatch, PaymentNotFound
from kaquan.payments.gateway import Chargeback, DisputeClosed, Gateway, Ignored, Notification
from kaquan.payments.models import Payment, PaymentCallback

log = logging.getLogger(__name__)

SYSTEM = "system"
IGNORED = "ignored"  # the outcome of a genuine notification kaquan has no use for
_TOKEN_LENGTH = 40  # payment_callbacks.payment_token
_OUTCOME_LENGTH = 64  # payment_callbacks.outcome


@dataclass(frozen=True)
class Receipt:
    """What a notification did: "delivered", "duplicate", "closed", "refund_succeeded", "unfulfilled_refunding",
    "chargeback", "chargeback_duplicate", "dispute_won", "dispute_lost", "dispute_closed_unknown", "ignored", …;
    `order_number` is None for an ignored notification (kaquan does not look its trade up) and for the close
    of a dispute about a payment kaquan does not know."""

    outcome: str
    order_number: str | None


async def receive(db: Database, gateway: Gateway, headers: dict[str, str], body: bytes) -> Receipt:
    """Verify and apply one provider notification; duplicates are harmless, bad ones are logged and refused,
    genuine ones kaquan has no use for are recorded and acknowledged (so the provider stops retrying)."""
    digest = hashlib.sha256(body).digest()
    try:
        note = gateway.verify(headers, body)
        if isinstance(note, Ignored):
            return await db.run(lambda session: _ignore(session, gateway, note, digest=digest))
        if isinstance(note, Chargeback):
            return await db.run(lambda session: _charged_back(db, session, gateway, note, digest=digest))
        if isinstance(note, DisputeClosed):
            return await db.run(lambda session: _dispute_closed(db, session, gateway, note, digest=digest))
        return await db.run(lambda session: apply(db, session, gateway, note, digest=digest))
    except DomainError as exc:
        log.warning("payment notification refused by %s: %s", gateway.name, exc.code)
        async with db.transaction() as session:
            session.add(
                PaymentCallback(
                    gateway=gateway.name,
                    received_at=clock.now(),
                    accepted=False,
                    outcome=exc.code,
                    body_sha256=digest,
                )
            )
        raise


async def apply(
    db: Database, session: AsyncSession, gateway: Gateway, note: Notification, *, digest: bytes, via: str = ""
) -> Receipt:
    """Apply a verified statement under the payment's and the order's locks, and record it."""
    payment = (
        await session.execute(
            db.lock(select(Payment).where(Payment.token == note.payment_token, Payment.gateway == gateway.name))
        )
    ).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound("the notification names an unknown payment")
    delivered: Order | None = None
    if note.kind == "refund":
        outcome = await refunds.provider_says(db, session, payment, note)
    else:
        _check_amount(payment, note)
        if note.kind == "closed":
            outcome = _closed(payment)
        else:
            outcome, delivered = await _paid(db, session, gateway, payment, note)
    order = await orders.by_id(session, payment.order_id)
    session.add(
        PaymentCallback(
            gateway=gateway.name,
            received_at=clock.now(),
            accepted=True,
            outcome=f"{via}{outcome}",
            payment_token=payment.token,
            txn_id=note.txn_id,
            body_sha256=digest,
        )
    )
    if delivered is not None:
        # Every other write first: the sale's hot ledger rows are locked last, by the statements right
        # before the commit, so concurrent sales wait for each other only that long (accounting.book_sale).
        await session.flush()
        await accounting.book_sale(
            db,
            session,
            order=delivered,
            gateway=payment.gateway,
            payment_ref=payment.token,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            fee_minor=payment.fee_minor,
        )
    return Receipt(outcome, order.number)


async def _charged_back(
    db: Database, session: AsyncSession, gateway: Gateway, note: Chargeback, *, digest: bytes
) -> Receipt:
    outcome, payment = await chargebacks.apply(db, session, gateway, note)
    return await _disputed(session, gateway, outcome, payment, note.txn_id, digest=digest)


async def _dispute_closed(
    db: Database, session: AsyncSession, gateway: Gateway, note: DisputeClosed, *, digest: bytes
) -> Receipt:
    outcome, payment = await chargebacks.close(db, session, gateway, note)
    return await _disputed(session, gateway, outcome, payment, note.opened.txn_id, digest=digest)


async def _disputed(
    session: AsyncSession, gateway: Gateway, outcome: str, payment: Payment | None, txn_id: str, *, digest: bytes
) -> Receipt:
    session.add(
        PaymentCallback(
            gateway=gateway.name,
            received_at=clock.now(),
            accepted=True,
            outcome=outcome,
            payment_token=payment.token if payment is not None else None,
            txn_id=txn_id[:128],
            body_sha256=digest,
        )
    )
    if payment is None:
        return Receipt(outcome, None)
    order = await orders.by_id(session, payment.order_id)
    return Receipt(outcome, order.number)


async def _ignore(session: AsyncSession, gateway: Gateway, note: Ignored, *, digest: bytes) -> Receipt:
    log.info("payment notification ignored from %s: %s", gateway.name, note.what)
    token = note.payment_token if note.payment_token and len(note.payment_token) <= _TOKEN_LENGTH else None
    session.add(
        PaymentCallback(
            gateway=gateway.name,
            received_at=clock.now(),
            accepted=True,
            outcome=f"{IGNORED}:{note.what}"[:_OUTCOME_LENGTH],
            payment_token=token,
            body_sha256=digest,
        )
    )
    return Receipt(IGNORED, None)


def _check_amount(payment: Payment, note: Notification) -> None:
    if (note.amount_minor, note.currency) != (payment.amount_minor, payment.currency):
        raise AmountMismatch(
            "the paid amount differs from the payment's amount",
            expected_minor=payment.amount_minor,
            paid_minor=note.amount_minor,
            currency=payment.currency,
            paid_currency=note.currency,
        )


def _closed(payment: Payment) -> str:
    if payment.status != "pending":
        return f"closed_ignored_{payment.status}"
    payment.status = "closed"
    payment.closed_at = clock.now()
    return "closed"


async def _paid(
    db: Database, session: AsyncSession, gateway: Gateway, payment: Payment, note: Notification
) -> tuple[str, Order | None]:
    """Apply a payment; returns the outcome and, when it delivered its order, that order (its sale not yet booked)."""
    known = await session.execute(select(Payment.id).where(Payment.gateway_txn_id == note.txn_id))
    if note.txn_id is not None and known.first() is not None:
        return "duplicate", None
    fee = (
        note.fee_minor
        if note.fee_minor is not None
        else accounting.gateway_fee(note.amount_minor, gateway.fee_rate_bp, gateway.fee_fixed_minor)
    )
    if payment.status in ("succeeded", "refunded"):
        # The buyer was charged a second time for a settled payment: that money goes back too.
        second = Payment(
            token=secrets.token_urlsafe(18),
            order_id=payment.order_id,
            gateway=gateway.name,
            method=payment.method,
            amount_minor=note.amount_minor,
            currency=note.currency,
            status="succeeded",
            gateway_txn_id=note.txn_id,
            payer=note.payer,
            fee_minor=fee,
            created_at=clock.now(),
            succeeded_at=clock.now(),
        )
        session.add(second)
        await session.flush()
        await _book(db, session, second, await orders.by_id(session, second.order_id))
        await refunds.request_by_system(db, session, second, reason="charged twice for one order")
        return "second_charge_refunding", None
    payment.status = "succeeded"  # from pending, or closed here while the buyer was paying
    payment.gateway_txn_id = note.txn_id
    payment.payer = note.payer
    payment.fee_minor = fee
    payment.succeeded_at = clock.now()
    settled = await orders.settle_payment(db, session, payment.order_id)
    if settled.result == "delivered":
        return "delivered", settled.order
    if settled.result == "held":  # risk holds it for a person's verdict (`payments.review`); the money is booked
        await _book(db, session, payment, settled.order)
        return "held_for_review", None
    # Paid but not deliverable (sold out after the hold lapsed, expired, or paid twice): the money goes back.
    await _book(db, session, payment, settled.order)
    await refunds.request_by_system(db, session, payment, reason=f"paid but not delivered ({settled.result})")
    return f"{settled.result}_refunding", None


async def _book(db: Database, session: AsyncSession, payment: Payment, order: Order) -> None:
    """Money the provider took is on the ledger, whatever becomes of the order (a refund reverses it)."""
    await accounting.book_payment(
        db,
        session,
        order=order,
        gateway=payment.gateway,
        payment_ref=payment.token,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        fee_minor=payment.fee_minor,
    )
