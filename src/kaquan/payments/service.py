"""Starting payments, accepting gateway notifications, and refunding.

`receive_notification` is a boundary like an HTTP handler: it owns its
transactions, because a rejected notification must be logged even though
nothing else may change.
"""

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock, outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.orders.holds import HoldPolicy
from kaquan.orders.service import Order
from kaquan.payments import registry
from kaquan.payments.errors import AmountMismatch, PaymentNotFound, PaymentUnavailable
from kaquan.payments.gateway import Gateway, Notification
from kaquan.payments.models import Payment as Payment
from kaquan.payments.models import PaymentCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    outcome: str  # "delivered", "unfulfilled_refunding", "duplicate", "already_settled_refunding"
    order_number: str


def require_gateway(gateway: Gateway | None) -> Gateway:
    """The gateway new payments go through; without one the shop refuses orders instead of holding codes."""
    if gateway is None:
        raise PaymentUnavailable()
    return gateway


def checkout_url(payment: Payment) -> str | None:
    """Where the buyer pays this payment, while its gateway is configured in this process."""
    gateway = registry.find(payment.gateway)
    return gateway.checkout_url(payment.token) if gateway is not None else None


@dataclass(frozen=True)
class Checkout:
    """A shop order and the payment that pays it; `replayed` when the client's retry found both made already."""

    order: Order
    lookup_secret: str
    payment: Payment
    replayed: bool


async def checkout(
    db: Database,
    session: AsyncSession,
    keys: orders.OrderKeys,
    gateway: Gateway | None,
    request: orders.OrderRequest,
    settings: Settings,
) -> Checkout:
    """The shop's sale, for its pages and its API alike: place the order under the shop's hold policy
    and start its payment, or, for a retry by the same client, return the order and payment made before.

    Without a gateway nothing is placed: the shop refuses the order rather than hold codes nobody can pay.
    """
    gateway = require_gateway(gateway)
    placed = await orders.place(
        db,
        session,
        keys,
        request,
        max_per_order=settings.max_per_order,
        hold_minutes=settings.hold_minutes,
        policy=HoldPolicy.of(settings),
    )
    payment = await latest_for_order(session, placed.order.id) if placed.replayed else None
    if payment is None:
        payment = await start(session, gateway, placed.order)
    return Checkout(placed.order, placed.lookup_secret, payment, placed.replayed)


async def start(session: AsyncSession, gateway: Gateway, order: Order) -> Payment:
    """A new pending payment for an unpaid order (one per checkout attempt)."""
    [payment] = await start_many(session, gateway, [order])
    return payment


async def start_many(session: AsyncSession, gateway: Gateway, unpaid: Sequence[Order]) -> list[Payment]:
    """`start` for many orders at once (a flash-sale batch): one flush inserts them all."""
    at = clock.now()
    started = [
        Payment(
            token=secrets.token_urlsafe(18),
            order_id=order.id,
            gateway=gateway.name,
            amount_minor=order.total_minor,
            currency=order.currency,
            status="pending",
            created_at=at,
        )
        for order in unpaid
    ]
    session.add_all(started)
    await session.flush()
    return started


async def latest_for_order(session: AsyncSession, order_id: int) -> Payment | None:
    stmt = select(Payment).where(Payment.order_id == order_id).order_by(Payment.id.desc()).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_token(session: AsyncSession, token: str) -> Payment:
    payment = (await session.execute(select(Payment).where(Payment.token == token))).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound("no such payment")
    return payment


async def receive_notification(db: Database, gateway: Gateway, headers: dict[str, str], body: bytes) -> Receipt:
    """Verify and apply one gateway notification; duplicates are harmless, bad ones are logged and refused."""
    digest = hashlib.sha256(body).digest()
    try:
        note = gateway.verify(headers, body)
        return await db.run(lambda session: _apply(db, session, gateway, note, digest))
    except DomainError as exc:
        log.warning("payment callback refused by %s: %s", gateway.name, exc.code)
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


async def _apply(db: Database, session: AsyncSession, gateway: Gateway, note: Notification, digest: bytes) -> Receipt:
    payment = (
        await session.execute(
            db.lock(select(Payment).where(Payment.token == note.payment_token, Payment.gateway == gateway.name))
        )
    ).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound("the callback names an unknown payment")
    if (note.amount_minor, note.currency) != (payment.amount_minor, payment.currency):
        raise AmountMismatch(
            "the paid amount differs from the payment's amount",
            expected_minor=payment.amount_minor,
            paid_minor=note.amount_minor,
            currency=payment.currency,
        )
    order = await orders.locked(db, session, payment.order_id)
    known = await session.execute(select(Payment.id).where(Payment.gateway_txn_id == note.txn_id))
    if known.first() is not None:
        outcome = "duplicate"
    elif payment.status != "pending":
        # The buyer was charged a second time for a settled payment: that money goes back too.
        second = Payment(
            token=secrets.token_urlsafe(18),
            order_id=payment.order_id,
            gateway=gateway.name,
            amount_minor=note.amount_minor,
            currency=note.currency,
            status="refund_pending",
            gateway_txn_id=note.txn_id,
            created_at=clock.now(),
            succeeded_at=clock.now(),
        )
        session.add(second)
        await session.flush()
        await outbox.enqueue(session, "payments.refund", {"payment_id": second.id})
        outcome = "second_charge_refunding"
    else:
        payment.status = "succeeded"
        payment.gateway_txn_id = note.txn_id
        payment.succeeded_at = clock.now()
        settled = await orders.settle_payment(db, session, payment.order_id)
        outcome = settled.result
        if settled.result != "delivered":
            # Paid but not deliverable (sold out after the hold lapsed, or paid twice): money goes back.
            payment.status = "refund_pending"
            await outbox.enqueue(session, "payments.refund", {"payment_id": payment.id})
            outcome = f"{settled.result}_refunding"
    session.add(
        PaymentCallback(
            gateway=gateway.name,
            received_at=clock.now(),
            accepted=True,
            outcome=outcome,
            payment_token=payment.token,
            txn_id=note.txn_id,
            body_sha256=digest,
        )
    )
    return Receipt(outcome, order.number)


async def refund(db: Database, session: AsyncSession, payment_id: int) -> Payment:
    """Refund a payment through its gateway, once; the order becomes refunded if it was unfulfilled."""
    payment = (await session.execute(db.lock(select(Payment).where(Payment.id == payment_id)))).scalar_one()
    if payment.status != "refund_pending":
        return payment
    gateway = registry.get(payment.gateway)
    payment.refund_ref = await gateway.refund(
        payment.token, payment.gateway_txn_id, payment.amount_minor, payment.currency
    )
    payment.status = "refunded"
    payment.refunded_at = clock.now()
    order = await orders.locked(db, session, payment.order_id)
    if order.status == "paid_unfulfilled":
        await orders.mark_refunded(db, session, order.id, note=f"refunded through {gateway.name}")
    return payment
