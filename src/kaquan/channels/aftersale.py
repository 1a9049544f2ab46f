"""After sale, one entry for every channel: refund an order (by its number), decide and retry refunds.

Which way the money goes back depends on who took it:
- shop and flash-sale orders were paid through a gateway: `payments.refunds` (full or partial, its own
  record and state machine, approved by finance unless the asker may approve, back through the gateway);
- marketplace orders: the marketplace collected the money, so the refund reverses its receivable
  (`marketplace.refunds`), whole orders only;
- agent orders: back to the agent's deposit (`agents.refunds.refund_delivered`), whole orders only.

Ledger-only refunds (marketplace, agent) are done at once, so only a person who may approve refunds may
ask for them. With `four_eyes`, nobody approves their own refund: every refund a person asks for through
a gateway waits for another person's approval. Each refusal has its own code: unpaid, already refunded,
more than remains, a code redeemed (a full refund), a partial refund of a ledger-only channel.
"""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import inventory
from kaquan.channels.agents import ordering
from kaquan.channels.agents import refunds as agent_refunds
from kaquan.channels.marketplace import refunds as marketplace_refunds
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, Forbidden
from kaquan.orders import lifecycle
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.payments import refunds as payment_refunds
from kaquan.payments import service as payments
from kaquan.payments.errors import RefundTooLarge
from kaquan.payments.refunds import PaymentRefund

Route = Literal["gateway", "marketplace", "agent"]
MAX_NOTE = 500


class OrderNotPaid(Conflict):
    code = "order_not_paid"

    def __init__(self, order: Order, why: str = "") -> None:
        super().__init__(
            f"order {order.number} is {order.status}: {why or 'it was never paid, so there is nothing to refund'}",
            number=order.number,
            status=order.status,
        )


class OrderAlreadyRefunded(Conflict):
    code = "order_already_refunded"

    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.number} was refunded already", number=order.number, status=order.status)


class CodeRedeemed(Conflict):
    """A full refund takes the codes back; a code that was redeemed cannot be taken back."""

    code = "refund_code_redeemed"

    def __init__(self, order: Order) -> None:
        super().__init__(
            f"a code of order {order.number} was redeemed already: refund part of it instead",
            number=order.number,
            status=order.status,
        )


class PartialRefundUnsupported(BadInput):
    code = "partial_refund_unsupported"

    def __init__(self, order: Order, route: Route) -> None:
        super().__init__(
            f"order {order.number} is refunded through its {route}: only the whole order ({order.total_minor})",
            number=order.number,
            total_minor=order.total_minor,
        )


class ApprovalRequired(Forbidden):
    """The refund would move money at once, which only a person who may approve refunds may do."""

    code = "refund_approval_required"


class OwnRefund(Forbidden):
    """Four eyes: the person who asked for a refund does not approve it."""

    code = "refund_own_approval"


@dataclass(frozen=True)
class AfterSaleRefund:
    """What a refund request did: `refund` is the gateway refund's record (None for ledger-only channels,
    which are done at once: `status` is then "succeeded")."""

    order: Order
    route: Route
    amount_minor: int
    currency: str
    status: str
    refund: PaymentRefund | None


def route_of(order: Order) -> Route:
    if marketplace_refunds.is_marketplace(order):
        return "marketplace"
    if order.channel == ordering.CHANNEL:
        return "agent"
    return "gateway"


def checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > payment_refunds.MAX_REASON:
        raise BadInput(f"a refund needs a reason of 1-{payment_refunds.MAX_REASON} characters", field="reason")
    return reason


async def request_refund(
    db: Database,
    session: AsyncSession,
    number: str,
    *,
    amount_minor: int | None,
    reason: str,
    actor: str,
    may_approve: bool,
    four_eyes: bool = False,
) -> AfterSaleRefund:
    """Refund an order, whole (`amount_minor` None) or in part, by the way its channel took the money."""
    reason = checked_reason(reason)
    if amount_minor is not None and amount_minor <= 0:
        raise BadInput("a refund is of a positive amount (minor units)", field="amount_minor")
    order = await orders.locked(db, session, (await orders.by_number(session, number)).id)
    if order.status in lifecycle.UNPAID:
        raise OrderNotPaid(order)
    if order.status == "refunded":
        raise OrderAlreadyRefunded(order)
    route = route_of(order)
    if route == "gateway":
        return await _through_gateway(
            db, session, order, amount_minor, reason, actor, may_approve=may_approve and not four_eyes
        )
    if amount_minor is not None and amount_minor != order.total_minor:
        raise PartialRefundUnsupported(order, route)
    if not may_approve:
        raise ApprovalRequired(f"a {route} refund is done at once: it needs a person who may approve refunds")
    if order.status == "delivered" and await _redeemed(db, session, order):
        raise CodeRedeemed(order)
    if route == "marketplace":
        await marketplace_refunds.refund_order(db, session, order.id, reason=reason, actor=actor)
    else:
        done = await agent_refunds.refund_delivered(
            db, session, agent_id=int(order.source), out_order_no=order.idempotency_key, reason=reason, actor=actor
        )
        order = done.order
    return AfterSaleRefund(order, route, order.total_minor, order.currency, "succeeded", None)


async def _through_gateway(
    db: Database,
    session: AsyncSession,
    order: Order,
    amount_minor: int | None,
    reason: str,
    actor: str,
    *,
    may_approve: bool,
) -> AfterSaleRefund:
    paid = [p for p in await payments.of_order(session, order.id) if p.status in ("succeeded", "refunded")]
    if not paid:
        raise OrderNotPaid(order, "no payment of it went through a gateway")
    payment = paid[0]
    left = await payment_refunds.remaining(session, payment)
    if left == 0 and payment.status == "refunded":
        raise OrderAlreadyRefunded(order)
    amount = left if amount_minor is None else amount_minor
    if amount > left:
        raise RefundTooLarge(
            f"a refund of {amount} is more than the {left} left to refund",
            amount_minor=amount,
            remaining_minor=left,
            currency=payment.currency,
        )
    full = amount == payment.amount_minor - payment.refunded_minor
    if full and order.status == "delivered" and await _redeemed(db, session, order):
        raise CodeRedeemed(order)
    refund = await payment_refunds.request_for_order(
        db, session, order.number, amount_minor=amount, reason=reason, actor=actor, may_approve=may_approve
    )
    return AfterSaleRefund(order, "gateway", refund.amount_minor, refund.currency, refund.status, refund)


async def _redeemed(db: Database, session: AsyncSession, order: Order) -> bool:
    return bool((await inventory.locked_code_states(db, session, order.id))["redeemed"])


async def decide(
    db: Database,
    session: AsyncSession,
    refund_no: str,
    *,
    approve: bool,
    actor: str,
    note: str = "",
    four_eyes: bool = False,
) -> PaymentRefund:
    """Finance approves or rejects a refund awaiting approval; a rejection says why."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise BadInput(f"a note has at most {MAX_NOTE} characters", field="note")
    if not approve and not note:
        raise BadInput("a rejection needs a note saying why", field="note")
    refund = await payment_refunds.by_refund_no(session, refund_no)
    if approve and four_eyes and refund.requested_by == actor:
        raise OwnRefund("four eyes: a refund is approved by someone other than who asked for it")
    return await payment_refunds.decide(db, session, refund.id, approve=approve, actor=actor, note=note)


async def retry(db: Database, session: AsyncSession, refund_no: str, *, actor: str) -> PaymentRefund:
    refund = await payment_refunds.by_refund_no(session, refund_no)
    return await payment_refunds.retry(db, session, refund.id, actor=actor)


async def refundable(session: AsyncSession, order: Order) -> int:
    """What a refund of the order may still give back now (0: nothing), for display; the request rechecks it."""
    if order.status in lifecycle.UNPAID or order.status == "refunded":
        return 0
    if route_of(order) != "gateway":
        return order.total_minor if order.status == "delivered" else 0
    paid = [p for p in await payments.of_order(session, order.id) if p.status in ("succeeded", "refunded")]
    return await payment_refunds.remaining(session, paid[0]) if paid else 0
