"""Refunds through the gateway that took the money: requested → processing → succeeded or failed.

Every refund has kaquan's own number at the provider, so a retry after a
timeout, a crash or a 5xx is the same refund there and never pays out twice;
the worker retries with backoff (outbox) and asks the provider about refunds
left `processing` (`sweeps`). A refund is refused when it is larger than what
is left of the payment (paid, less refunds done or under way).

Who asks: kaquan itself, for money it cannot keep (a paid order it could not
deliver, a second charge), approved by the system; or a person, for an order
after sale, which waits for a finance approval unless the person may approve.
A full refund of a delivered order voids its codes when it is approved (never
when a code of it was redeemed already); a partial refund leaves them.
"""

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting, inventory
from kaquan.audit import service as audit
from kaquan.kit import clock, outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput
from kaquan.orders import lifecycle
from kaquan.orders import service as orders
from kaquan.payments import registry
from kaquan.payments.errors import RefundNotAllowed, RefundNotFound, RefundTooLarge
from kaquan.payments.gateway import Notification, RefundRequest, RefundResult
from kaquan.payments.models import Payment, PaymentChargeback
from kaquan.payments.models import PaymentRefund as PaymentRefund

TOPIC = "payments.refund"
REFUNDED_TOPIC = "order.refunded"
MAX_REASON = 300
OPEN = ("awaiting_approval", "requested", "processing")
SYSTEM = "system"
REDEEMED = "a code of this order was redeemed already; refund part of it instead"


def new_refund_no() -> str:
    return "R" + secrets.token_hex(12)


async def remaining(session: AsyncSession, payment: Payment) -> int:
    """What may still be asked back of a payment: paid, less refunds done or under way."""
    if payment.status not in ("succeeded", "refunded"):
        return 0
    asked = await session.execute(
        select(func.coalesce(func.sum(PaymentRefund.amount_minor), 0)).where(
            PaymentRefund.payment_id == payment.id, PaymentRefund.status.in_(OPEN)
        )
    )
    return payment.amount_minor - payment.refunded_minor - int(asked.scalar_one())


async def request_by_system(db: Database, session: AsyncSession, payment: Payment, *, reason: str) -> PaymentRefund:
    """Give back everything left of a payment kaquan cannot keep; approved at once, codes untouched."""
    amount = await remaining(session, payment)
    return await _create(
        session, payment, amount=amount, reason=reason, actor=SYSTEM, approved_by=SYSTEM, void_codes=False
    )


async def request_for_order(
    db: Database,
    session: AsyncSession,
    order_number: str,
    *,
    amount_minor: int | None,
    reason: str,
    actor: str,
    may_approve: bool,
) -> PaymentRefund:
    """An after-sale refund of a paid order, full (`amount_minor` None) or partial, asked for by a person.

    It waits for a finance approval unless the person asking may approve refunds.
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise BadInput(f"a refund needs a reason of 1-{MAX_REASON} characters", field="reason")
    order = await orders.locked(db, session, (await orders.by_number(session, order_number)).id)
    if order.status not in ("delivered", "paid_unfulfilled"):
        raise RefundNotAllowed(
            f"order {order.number} is {order.status}: only a paid order is refunded", status=order.status
        )
    payment = await _paid_payment(db, session, order.id)
    left = await remaining(session, payment)
    amount = left if amount_minor is None else amount_minor
    if amount <= 0 or amount > left:
        raise RefundTooLarge(
            f"a refund of {amount} is more than the {left} left to refund",
            amount_minor=amount,
            remaining_minor=left,
            currency=payment.currency,
        )
    full = amount == payment.amount_minor - payment.refunded_minor
    void = full and order.status == "delivered"
    if void and (await inventory.locked_code_states(db, session, order.id))["redeemed"]:
        raise RefundNotAllowed(
            "a code of this order was redeemed already; refund part of it instead", status=order.status
        )
    refund = await _create(
        session,
        payment,
        amount=amount,
        reason=reason,
        actor=actor,
        approved_by=actor if may_approve else None,
        void_codes=void,
    )
    await audit.record(
        session,
        actor,
        "refund.requested",
        target=f"order:{order.number}",
        after={
            "refund_no": refund.refund_no,
            "amount_minor": amount,
            "currency": payment.currency,
            "reason": reason,
            "status": refund.status,
            "voids_codes": void,
        },
    )
    if refund.status == "requested" and void:
        await _void_codes(db, session, refund)
    return refund


async def _paid_payment(db: Database, session: AsyncSession, order_id: int) -> Payment:
    stmt = (
        select(Payment)
        .where(Payment.order_id == order_id, Payment.status.in_(("succeeded", "refunded")))
        .order_by(Payment.id)
        .limit(1)
    )
    payment = (await session.execute(db.lock(stmt))).scalar_one_or_none()
    if payment is None:
        raise RefundNotAllowed("this order was not paid through a gateway")
    return payment


async def _create(
    session: AsyncSession,
    payment: Payment,
    *,
    amount: int,
    reason: str,
    actor: str,
    approved_by: str | None,
    void_codes: bool,
) -> PaymentRefund:
    at = clock.now()
    refund = PaymentRefund(
        refund_no=new_refund_no(),
        payment_id=payment.id,
        order_id=payment.order_id,
        amount_minor=amount,
        currency=payment.currency,
        fee_back_minor=0,
        reason=reason[:MAX_REASON],
        status="requested" if approved_by else "awaiting_approval",
        attempts=0,
        void_codes=void_codes,
        requested_by=actor,
        approved_by=approved_by,
        created_at=at,
        updated_at=at,
    )
    session.add(refund)
    await session.flush()
    if approved_by:
        await outbox.enqueue(session, TOPIC, {"refund_id": refund.id})
    return refund


async def locked(db: Database, session: AsyncSession, refund_id: int) -> PaymentRefund:
    stmt = db.lock(select(PaymentRefund).where(PaymentRefund.id == refund_id))
    refund = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if refund is None:
        raise RefundNotFound("no such refund", refund_id=refund_id)
    return refund


async def decide(
    db: Database, session: AsyncSession, refund_id: int, *, approve: bool, actor: str, note: str = ""
) -> PaymentRefund:
    """Finance approves (the refund goes to the gateway) or rejects a refund a person asked for."""
    refund = await locked(db, session, refund_id)
    if refund.status != "awaiting_approval":
        raise RefundNotAllowed(
            f"refund {refund.refund_no} is {refund.status}, not awaiting approval", status=refund.status
        )
    order = await orders.by_id(session, refund.order_id)
    refund.updated_at = clock.now()
    if approve:
        refund.status, refund.approved_by = "requested", actor
        if refund.void_codes:
            await _void_codes(db, session, refund)
        await outbox.enqueue(session, TOPIC, {"refund_id": refund.id})
    else:
        refund.status, refund.detail, refund.finished_at = "rejected", note[:500] or None, clock.now()
    await audit.record(
        session,
        actor,
        "refund.approved" if approve else "refund.rejected",
        target=f"order:{order.number}",
        before={"status": "awaiting_approval"},
        after={"refund_no": refund.refund_no, "status": refund.status, "note": note},
    )
    return refund


async def retry(db: Database, session: AsyncSession, refund_id: int, *, actor: str) -> PaymentRefund:
    """Send a failed refund to the gateway again, under the same refund number."""
    refund = await locked(db, session, refund_id)
    if refund.status != "failed":
        raise RefundNotAllowed(
            f"refund {refund.refund_no} is {refund.status}; only a failed one is retried", status=refund.status
        )
    refund.status, refund.finished_at, refund.updated_at = "requested", None, clock.now()
    await outbox.enqueue(session, TOPIC, {"refund_id": refund.id})
    order = await orders.by_id(session, refund.order_id)
    await audit.record(
        session, actor, "refund.retried", target=f"order:{order.number}", after={"refund_no": refund.refund_no}
    )
    return refund


async def _void_codes(db: Database, session: AsyncSession, refund: PaymentRefund) -> None:
    order = await orders.locked(db, session, refund.order_id)
    states = await inventory.locked_code_states(db, session, order.id)
    if states["redeemed"]:
        raise RefundNotAllowed(
            "a code of this order was redeemed already; refund part of it instead", status=order.status
        )
    if states["sold"]:
        await inventory.void_sold_codes(session, order.id, quantity=states["sold"])


async def process(db: Database, session: AsyncSession, refund_id: int) -> PaymentRefund:
    """Ask the gateway to refund (again, under the same number); the worker runs this, retrying on GatewayFailed."""
    refund = await locked(db, session, refund_id)
    if refund.status not in ("requested", "processing"):
        return refund
    payment = await _locked_payment(db, session, refund.payment_id)
    gateway = registry.get(payment.gateway)
    refund.attempts += 1
    result = await gateway.refund(
        RefundRequest(
            payment_token=payment.token,
            txn_id=payment.gateway_txn_id,
            refund_no=refund.refund_no,
            amount_minor=refund.amount_minor,
            total_minor=payment.amount_minor,
            currency=refund.currency,
            reason=refund.reason,
            notify_url=registry.notify_url(payment.gateway),
        )
    )
    await _settle(db, session, refund, payment, result)
    return refund


async def check(db: Database, session: AsyncSession, *, refund_id: int) -> PaymentRefund:
    """Ask the gateway how a refund left `processing` ended (the worker's sweep)."""
    refund = await locked(db, session, refund_id)
    if refund.status != "processing":
        return refund
    payment = await _locked_payment(db, session, refund.payment_id)
    result = await registry.get(payment.gateway).query_refund(payment.token, refund.refund_no)
    refund.updated_at = clock.now()
    await _settle(db, session, refund, payment, result)
    return refund


async def provider_says(db: Database, session: AsyncSession, payment: Payment, note: Notification) -> str:
    """A refund notification: settle the refund it names (already locked payment)."""
    stmt = db.lock(
        select(PaymentRefund).where(PaymentRefund.refund_no == note.refund_no, PaymentRefund.payment_id == payment.id)
    )
    refund = (await session.execute(stmt)).scalar_one_or_none()
    if refund is None:
        raise RefundNotFound("the notification names an unknown refund", refund_no=note.refund_no)
    if refund.status not in ("requested", "processing"):
        return f"refund_{refund.status}_already"
    status = note.refund_status or "processing"
    await _settle(db, session, refund, payment, RefundResult(status=status))
    return f"refund_{status}"


async def _settle(
    db: Database, session: AsyncSession, refund: PaymentRefund, payment: Payment, result: RefundResult
) -> None:
    refund.updated_at = clock.now()
    if result.provider_ref:
        refund.provider_ref = result.provider_ref
    if result.status == "processing":
        refund.status = "processing"
        return
    refund.finished_at = clock.now()
    if result.status == "failed":
        refund.status, refund.detail = "failed", result.detail[:500] or "the gateway refused the refund"
        return
    refund.status = "succeeded"
    before = payment.refunded_minor
    payment.refunded_minor = before + refund.amount_minor
    refund.fee_back_minor = fee_back(payment, before)
    if payment.refunded_minor == payment.amount_minor:
        payment.status, payment.refunded_at = "refunded", clock.now()
    order = await orders.locked(db, session, payment.order_id)
    await accounting.book_refund(
        db,
        session,
        order=order,
        gateway=payment.gateway,
        refund_no=refund.refund_no,
        amount_minor=refund.amount_minor,
        currency=refund.currency,
        fee_back_minor=refund.fee_back_minor,
    )
    # The order itself is refunded when it was never delivered and its money went back, or when a full
    # after-sale refund took its codes; giving back a second charge leaves a delivered order as it is.
    if (order.status == "paid_unfulfilled" and payment.status == "refunded") or (
        order.status == "delivered" and refund.void_codes
    ):
        note = f"refunded through {payment.gateway} ({refund.refund_no})"
        await lifecycle.move(session, order, "refunded", note=note)
    await outbox.enqueue(
        session,
        REFUNDED_TOPIC,
        {
            "order_id": order.id,
            "number": order.number,
            "refund_no": refund.refund_no,
            "amount_minor": refund.amount_minor,
            "currency": refund.currency,
        },
    )


def fee_back(payment: Payment, refunded_before: int) -> int:
    """The share of the provider's fee the money given back since `refunded_before` returns (see
    `accounting.fee_returned`); 0 if the provider keeps its fee."""
    if payment.fee_minor == 0 or registry.get(payment.gateway).keeps_fee_on_refund:
        return 0
    return accounting.fee_returned(
        fee_minor=payment.fee_minor,
        paid_minor=payment.amount_minor,
        refunded_before_minor=refunded_before,
        refund_minor=payment.refunded_minor - refunded_before,
    )


async def _locked_payment(db: Database, session: AsyncSession, payment_id: int) -> Payment:
    stmt = db.lock(select(Payment).where(Payment.id == payment_id)).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


async def of_order(session: AsyncSession, order_id: int) -> list[PaymentRefund]:
    stmt = select(PaymentRefund).where(PaymentRefund.order_id == order_id).order_by(PaymentRefund.id)
    return list((await session.execute(stmt)).scalars())


async def awaiting_approval(session: AsyncSession, *, limit: int = 100) -> list[PaymentRefund]:
    stmt = (
        select(PaymentRefund).where(PaymentRefund.status == "awaiting_approval").order_by(PaymentRefund.id).limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def by_refund_no(session: AsyncSession, refund_no: str) -> PaymentRefund:
    found = await session.execute(select(PaymentRefund).where(PaymentRefund.refund_no == refund_no))
    refund = found.scalar_one_or_none()
    if refund is None:
        raise RefundNotFound(f"no refund {refund_no}", refund_no=refund_no)
    return refund


async def with_status(session: AsyncSession, status: str, *, limit: int = 100) -> list[PaymentRefund]:
    """Refunds in one state, oldest first (`awaiting_approval` is finance's queue)."""
    stmt = select(PaymentRefund).where(PaymentRefund.status == status).order_by(PaymentRefund.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def books_records(session: AsyncSession) -> tuple[list[accounting.PaidRecord], list[accounting.RefundRecord]]:
    """Every payment a provider confirmed and every refund it completed or chargeback it reported, as the books
    compare them."""
    paid_rows = list(
        (
            await session.execute(
                select(Payment).where(Payment.status.in_(("succeeded", "refunded"))).order_by(Payment.id)
            )
        ).scalars()
    )
    numbers = {
        order_id: order.number
        for order_id, order in (await orders.by_ids(session, [p.order_id for p in paid_rows])).items()
    }
    tokens = {p.id: p.token for p in paid_rows}
    paid = [
        accounting.PaidRecord(
            p.token, numbers.get(p.order_id, f"id {p.order_id}"), p.gateway, p.amount_minor, p.currency, p.fee_minor
        )
        for p in paid_rows
    ]
    done = (
        await session.execute(
            select(PaymentRefund).where(PaymentRefund.status == "succeeded").order_by(PaymentRefund.id)
        )
    ).scalars()
    refunds = [
        accounting.RefundRecord(
            r.refund_no,
            tokens.get(r.payment_id, f"id {r.payment_id}"),
            r.amount_minor,
            r.currency,
            fee_back_minor=r.fee_back_minor,
        )
        for r in done
    ]
    charged_back = (await session.execute(select(PaymentChargeback).order_by(PaymentChargeback.id))).scalars()
    refunds += [
        accounting.RefundRecord(
            c.chargeback_no,
            tokens.get(c.payment_id, f"id {c.payment_id}"),
            c.amount_minor,
            c.currency,
            chargeback=True,
            fee_back_minor=c.fee_back_minor,
            reinstated_minor=c.reinstated_minor,
        )
        for c in charged_back
    ]
    return paid, refunds
