"""The worker asks providers what their notifications did not tell us.

A notification can be lost (the provider gave up, our server was down, a crash
came between the provider's success and our commit). So the worker asks the
provider about every payment whose trade has been open a while without word
(`check_pending`), applies the answer through the path a notification takes,
closes trades of orders that can no longer be paid, and asks about refunds left
`processing` (`check_refunds`). Provider calls run outside any transaction;
a provider that times out is asked again on the next pass.
"""

import hashlib
import logging
from datetime import timedelta
from functools import partial

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.payments import notifications, refunds, registry
from kaquan.payments.errors import GatewayRefused
from kaquan.payments.gateway import Gateway, Notification, TradeState
from kaquan.payments.models import Payment, PaymentRefund

log = logging.getLogger(__name__)

CLOSE_TOPIC = "payments.close"
QUIET_FOR = timedelta(seconds=60)  # a trade this old without a notification is asked about
ASK_AGAIN_AFTER = timedelta(seconds=60)
REFUND_QUIET_FOR = timedelta(seconds=30)


async def run(db: Database, *, limit: int = 50) -> int:
    """One pass of both checks; returns how many payments and refunds were asked about."""
    return await check_pending(db, limit=limit) + await check_refunds(db, limit=limit)


async def check_pending(db: Database, *, limit: int = 50) -> int:
    now = clock.now()
    async with db.read() as session:
        stmt = (
            select(Payment.id, Payment.token, Payment.gateway)
            .where(
                Payment.status == "pending",
                Payment.action.is_not(None),
                Payment.created_at <= now - QUIET_FOR,
                or_(Payment.checked_at.is_(None), Payment.checked_at <= now - ASK_AGAIN_AFTER),
            )
            .order_by(Payment.checked_at.is_not(None), Payment.checked_at, Payment.id)
            .limit(limit)
        )
        due = list((await session.execute(stmt)).all())
    for payment_id, token, gateway_name in due:
        gateway = registry.find(gateway_name)
        if gateway is None:
            continue
        try:
            state = await gateway.query(token)
        except DomainError as exc:
            log.warning("asking %s about payment %s failed: %s", gateway_name, payment_id, exc.code)
            await db.run(partial(_mark_checked, payment_id=payment_id))
            continue
        await db.run(partial(_learned, db, gateway=gateway, payment_id=payment_id, state=state))
        if state.status == "pending":
            async with db.read() as session:
                payment = await session.get(Payment, payment_id)
                order = await orders.by_id(session, payment.order_id) if payment else None
            if order is not None and order.status != "pending_payment":
                await db.run(partial(close, db, payment_id=payment_id))
    return len(due)


async def _mark_checked(session: AsyncSession, *, payment_id: int) -> None:
    payment = await session.get(Payment, payment_id)
    if payment is not None:
        payment.checked_at = clock.now()


async def _learned(
    db: Database, session: AsyncSession, *, gateway: Gateway, payment_id: int, state: TradeState
) -> None:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        return
    payment.checked_at = clock.now()
    note = _as_notification(payment, state)
    if note is not None and payment.status == "pending":
        digest = hashlib.sha256(f"query:{gateway.name}:{payment.token}:{state}".encode()).digest()
        await notifications.apply(db, session, gateway, note, digest=digest, via="query:")


def _as_notification(payment: Payment, state: TradeState) -> Notification | None:
    if state.status == "paid":
        return Notification(
            kind="paid",
            payment_token=payment.token,
            amount_minor=state.amount_minor if state.amount_minor is not None else -1,
            currency=state.currency or "",
            txn_id=state.txn_id,
            payer=state.payer,
        )
    if state.status == "closed":
        return Notification(
            kind="closed", payment_token=payment.token, amount_minor=payment.amount_minor, currency=payment.currency
        )
    return None


async def close(db: Database, session: AsyncSession, *, payment_id: int) -> None:
    """Close a pending payment's trade at its provider (the order can no longer be paid, or the buyer switched).

    If the buyer paid in the meantime the provider refuses to close; the query
    then finds the payment and it is applied like its notification.
    """
    payment = (await session.execute(db.lock(select(Payment).where(Payment.id == payment_id)))).scalar_one()
    if payment.status != "pending":
        return
    gateway = registry.get(payment.gateway)
    if payment.action is not None:
        try:
            await gateway.close(payment.token)
        except GatewayRefused:
            await _learned(
                db, session, gateway=gateway, payment_id=payment.id, state=await gateway.query(payment.token)
            )
            if payment.status != "pending":
                return
    payment.status, payment.closed_at = "closed", clock.now()


async def check_refunds(db: Database, *, limit: int = 50) -> int:
    async with db.read() as session:
        stmt = (
            select(PaymentRefund.id)
            .where(PaymentRefund.status == "processing", PaymentRefund.updated_at <= clock.now() - REFUND_QUIET_FOR)
            .order_by(PaymentRefund.updated_at)
            .limit(limit)
        )
        due = list((await session.execute(stmt)).scalars())
    for refund_id in due:
        try:
            await db.run(partial(refunds.check, db, refund_id=refund_id))
        except DomainError as exc:
            log.warning("asking about refund %s failed: %s", refund_id, exc.code)
            await db.run(partial(_mark_refund_asked, refund_id=refund_id))
    return len(due)


async def _mark_refund_asked(session: AsyncSession, *, refund_id: int) -> None:
    """A provider that could not answer is asked again after the quiet period, not on every pass."""
    refund = await session.get(PaymentRefund, refund_id)
    if refund is not None:
        refund.updated_at = clock.now()
