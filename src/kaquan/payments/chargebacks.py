"""Chargebacks (拒付): a buyer's bank took a payment back, and the gateway says so (Stripe: `charge.dispute.created`).

Applied once per dispute, under the payment's and the order's locks, in the notification's transaction:
- a `payment_chargebacks` row (unique by gateway and dispute id: a re-delivered event finds it and changes
  nothing);
- the payment counts the amount as given back (`refunded_minor`; `refunded` once nothing is left), so no
  refund can pay it out a second time;
- the sale is reversed on the ledger with the dispute fee booked (`accounting.book_chargeback`, reference
  `chargeback:<chargeback_no>`), last, right before the commit;
- the risk decision that let the order through is labelled fraud for training (`risk.reviews`), and
  `fraud.fraud_evidence` names the order's subjects.

A dispute about a payment kaquan does not know, or for more than is left of it, is refused (4xx) and
changes nothing. The order keeps its status: its codes were handed out and stay so (a chargeback is
not a refund kaquan chose); the order page shows the chargeback.
"""

import logging
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.orders import service as orders
from kaquan.payments import refunds
from kaquan.payments.errors import AmountMismatch, PaymentNotFound
from kaquan.payments.fraud import order_subjects
from kaquan.payments.gateway import Chargeback, Gateway
from kaquan.payments.models import Payment, PaymentChargeback
from kaquan.risk import reviews

log = logging.getLogger(__name__)


def new_chargeback_no() -> str:
    return "C" + secrets.token_hex(12)


async def apply(db: Database, session: AsyncSession, gateway: Gateway, note: Chargeback) -> tuple[str, Payment]:
    """Apply a verified chargeback; ("chargeback" or "chargeback_duplicate", the payment it took back)."""
    payment = (
        await session.execute(
            db.lock(select(Payment).where(Payment.gateway == gateway.name, Payment.gateway_txn_id == note.txn_id))
        )
    ).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound("the dispute names a charge kaquan does not know", dispute=note.dispute_id)
    order = await orders.locked(db, session, payment.order_id)
    known = await session.execute(
        select(PaymentChargeback.id).where(
            PaymentChargeback.gateway == gateway.name, PaymentChargeback.dispute_id == note.dispute_id
        )
    )
    if known.first() is not None:
        return "chargeback_duplicate", payment
    left = payment.amount_minor - payment.refunded_minor
    if note.currency != payment.currency or not 0 < note.amount_minor <= left:
        raise AmountMismatch(
            "the disputed amount is more than is left of the payment",
            expected_minor=left,
            paid_minor=note.amount_minor,
            currency=payment.currency,
            paid_currency=note.currency,
        )
    before = payment.refunded_minor
    payment.refunded_minor = before + note.amount_minor
    fee_back = refunds.fee_back(payment, before)
    if payment.refunded_minor == payment.amount_minor:
        payment.status, payment.refunded_at = "refunded", clock.now()
    decision_id = await reviews.label_order_fraud(
        session, order.id, subjects=order_subjects(order), placed_at=order.created_at
    )
    chargeback = PaymentChargeback(
        chargeback_no=new_chargeback_no(),
        gateway=gateway.name,
        dispute_id=note.dispute_id,
        payment_id=payment.id,
        order_id=order.id,
        amount_minor=note.amount_minor,
        currency=note.currency,
        fee_minor=note.fee_minor,
        fee_back_minor=fee_back,
        reason=note.reason[:64],
        decision_id=decision_id,
        received_at=clock.now(),
    )
    session.add(chargeback)
    await session.flush()
    log.warning(
        "order %s charged back via %s (dispute %s, %s): %s %s, dispute fee %s",
        order.number,
        gateway.name,
        note.dispute_id,
        note.reason or "no reason given",
        note.amount_minor,
        note.currency,
        note.fee_minor,
    )
    await accounting.book_chargeback(
        db,
        session,
        order=order,
        gateway=gateway.name,
        chargeback_no=chargeback.chargeback_no,
        amount_minor=note.amount_minor,
        currency=note.currency,
        fee_back_minor=fee_back,
        dispute_fee_minor=note.fee_minor,
    )
    return "chargeback", payment


async def of_order(session: AsyncSession, order_id: int) -> list[PaymentChargeback]:
    stmt = select(PaymentChargeback).where(PaymentChargeback.order_id == order_id).order_by(PaymentChargeback.id)
    return list((await session.execute(stmt)).scalars())


async def all_chargebacks(session: AsyncSession) -> list[PaymentChargeback]:
    return list((await session.execute(select(PaymentChargeback).order_by(PaymentChargeback.id))).scalars())
