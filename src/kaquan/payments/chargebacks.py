"""Chargebacks (拒付): a buyer's bank took a payment back (Stripe: `charge.dispute.created`), and later the
dispute ends (`charge.dispute.closed`).

A dispute opening is applied once per dispute, under the payment's and the order's locks, in the
notification's transaction:
- a `payment_chargebacks` row (unique by gateway and dispute id: a re-delivered event finds it and changes
  nothing), `open`;
- the payment counts the amount as given back (`refunded_minor`; `refunded` once nothing is left), so no
  refund can pay it out a second time;
- the sale is reversed on the ledger with the dispute fee booked (`accounting.book_chargeback`, reference
  `chargeback:<chargeback_no>`), last, right before the commit;
- the risk decision that let the order through is labelled fraud for training (`risk.reviews`), and
  `fraud.fraud_evidence` names the order's subjects.

A dispute closing sets the row's outcome, once (a re-delivery of a closed dispute is a duplicate):
- `won`: the money comes back. The payment counts it as paid again, the chargeback is reversed on the
  ledger with the part of the dispute fee the gateway returned (`accounting.book_dispute_won`, reference
  `dispute_won:<chargeback_no>`), and the decision is relabelled `legit`: the card's bank ruled the charge
  genuine on the evidence, the latest and strongest proof, so the model learns it as an honest order and
  `fraud_evidence` no longer names its subjects;
- `lost`: final; nothing more moves and the fraud label stays;
- `warning_closed` (an inquiry closed without a chargeback) and `prevented`: recorded; only money the
  gateway reports given back moves.
A close for a dispute kaquan never recorded (an inquiry, or a dispute of a payment it does not know) is
acknowledged and recorded, so the gateway stops resending it; one that overtook its own opening applies the
opening first.

A dispute opening about a payment kaquan does not know, or for more than is left of it, is refused (4xx)
and changes nothing. The order keeps its status: its codes were handed out and stay so (a chargeback is
not a refund kaquan chose); the order page shows the chargeback and its outcome.
"""

import logging
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.payments import refunds
from kaquan.payments.errors import AmountMismatch, PaymentNotFound
from kaquan.payments.fraud import order_subjects
from kaquan.payments.gateway import Chargeback, DisputeClosed, Gateway
from kaquan.payments.models import Payment, PaymentChargeback
from kaquan.risk import reviews

log = logging.getLogger(__name__)

UNKNOWN = "dispute_closed_unknown"


def new_chargeback_no() -> str:
    return "C" + secrets.token_hex(12)


async def apply(db: Database, session: AsyncSession, gateway: Gateway, note: Chargeback) -> tuple[str, Payment]:
    """Apply a verified chargeback; ("chargeback" or "chargeback_duplicate", the payment it took back)."""
    payment = await _disputed_payment(db, session, gateway, note)
    if payment is None:
        raise PaymentNotFound("the dispute names a charge kaquan does not know", dispute=note.dispute_id)
    order = await orders.locked(db, session, payment.order_id)
    if await _recorded(session, gateway, note.dispute_id) is not None:
        return "chargeback_duplicate", payment
    await _charge_back(db, session, gateway, payment, order, note)
    return "chargeback", payment


async def close(
    db: Database, session: AsyncSession, gateway: Gateway, note: DisputeClosed
) -> tuple[str, Payment | None]:
    """Apply a verified dispute outcome; (its outcome, the disputed payment when kaquan knows it).

    The outcome is `dispute_<status>`, `dispute_closed_duplicate`, or `dispute_closed_unknown`."""
    opened = note.opened
    payment = await _disputed_payment(db, session, gateway, opened)
    if payment is None:
        return UNKNOWN, None
    order = await orders.locked(db, session, payment.order_id)
    chargeback = await _recorded(session, gateway, opened.dispute_id)
    if chargeback is None:
        if note.status not in ("won", "lost"):  # an inquiry: no money was ever taken
            return UNKNOWN, payment
        chargeback = await _charge_back(db, session, gateway, payment, order, opened)
    if chargeback.status != "open":
        return "dispute_closed_duplicate", payment
    if not 0 <= note.reinstated_minor <= chargeback.amount_minor or note.fee_returned_minor > chargeback.fee_minor:
        raise AmountMismatch(
            "the dispute gives back more than it took",
            expected_minor=chargeback.amount_minor,
            paid_minor=note.reinstated_minor,
            currency=chargeback.currency,
            paid_currency=opened.currency,
        )
    chargeback.status, chargeback.closed_at = note.status, clock.now()
    chargeback.reinstated_minor, chargeback.fee_returned_minor = note.reinstated_minor, note.fee_returned_minor
    if note.status == "won" and chargeback.decision_id is not None:
        await reviews.label_decision_legit(session, chargeback.decision_id)
    log.warning(
        "order %s: dispute %s via %s closed %s, %s %s given back",
        order.number,
        opened.dispute_id,
        gateway.name,
        note.status,
        note.reinstated_minor,
        chargeback.currency,
    )
    if note.reinstated_minor:
        payment.refunded_minor -= note.reinstated_minor
        if payment.status == "refunded":
            payment.status, payment.refunded_at = "succeeded", None
        await session.flush()
        await accounting.book_dispute_won(
            db,
            session,
            order=order,
            gateway=gateway.name,
            chargeback_no=chargeback.chargeback_no,
            reinstated_minor=note.reinstated_minor,
            currency=chargeback.currency,
            fee_returned_minor=note.fee_returned_minor,
        )
    return f"dispute_{note.status}", payment


async def _disputed_payment(db: Database, session: AsyncSession, gateway: Gateway, note: Chargeback) -> Payment | None:
    stmt = select(Payment).where(Payment.gateway == gateway.name, Payment.gateway_txn_id == note.txn_id)
    return (await session.execute(db.lock(stmt))).scalar_one_or_none()


async def _recorded(session: AsyncSession, gateway: Gateway, dispute_id: str) -> PaymentChargeback | None:
    stmt = select(PaymentChargeback).where(
        PaymentChargeback.gateway == gateway.name, PaymentChargeback.dispute_id == dispute_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _charge_back(
    db: Database, session: AsyncSession, gateway: Gateway, payment: Payment, order: Order, note: Chargeback
) -> PaymentChargeback:
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
        status="open",
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
    return chargeback


async def of_order(session: AsyncSession, order_id: int) -> list[PaymentChargeback]:
    stmt = select(PaymentChargeback).where(PaymentChargeback.order_id == order_id).order_by(PaymentChargeback.id)
    return list((await session.execute(stmt)).scalars())


async def all_chargebacks(session: AsyncSession) -> list[PaymentChargeback]:
    return list((await session.execute(select(PaymentChargeback).order_by(PaymentChargeback.id))).scalars())
