"""Review verdicts: what a person's approve, decline or fraud verdict does to an order risk held.

The one place that sees a held order, its payment and its review together (payments sits above orders and
risk). A verdict locks the order first, then its review, in that order everywhere, the order lock being the
one payment settlement takes too: so of two verdicts on one order exactly one wins, the other finds the
review concluded (the same verdict again is answered as done: retrying is safe; a different one is 409
`risk_review_concluded`), and a payment arriving during a verdict waits and then sees it.

- **approve**: a paid order is delivered now; an unpaid one is delivered when it is paid (settlement sees
  the review approved). The decision is labelled `legit`.
- **decline**: an unpaid order is cancelled (its codes go back to stock); a paid one gives its codes back
  and its whole payment is refunded through the refund service, approved by the reviewer's verdict. A
  late payment of a declined order is refunded, never delivered.
- **fraud**: decline, label the decision `fraud`, and block the buyer's contact, device and address.
"""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.audit import service as audit
from kaquan.kit.db import Database
from kaquan.orders import service as orders
from kaquan.payments import refunds
from kaquan.payments.models import Payment
from kaquan.risk import reviews
from kaquan.risk.reviews import RiskDecision, RiskReview

Verdict = Literal["approve", "decline", "fraud"]
STATUS_OF: dict[str, str] = {"approve": "approved", "decline": "declined", "fraud": "fraud"}
WAITING = ("pending_payment", "paid")


@dataclass(frozen=True)
class VerdictResult:
    number: str
    verdict: str  # approved | declined | fraud
    order_status: str
    refund_no: str | None
    blocked: list[str]
    replayed: bool  # the same verdict was given before: nothing was done again


async def give_verdict(
    db: Database, session: AsyncSession, number: str, verdict: Verdict, *, actor: str, reason: str = ""
) -> VerdictResult:
    reason = reviews.check_reason(reason)
    order = await orders.locked(db, session, (await orders.by_number(session, number)).id)
    review = await reviews.locked(db, session, order.id, number=number)
    status = STATUS_OF[verdict]
    if review.status == status:
        return VerdictResult(number, status, order.status, None, [], replayed=True)
    before = {"status": review.status, "order_status": order.status}
    refund_no: str | None = None
    if verdict == "approve":
        if order.status == "paid":
            outcome = await orders.deliver_paid(db, session, order)
            if outcome.result == "delivered":
                await accounting.book_delivery(db, session, order)
            else:
                refund_no = await _refund(db, session, order.id, "paid, held for review, then sold out")
    elif await orders.decline_held(db, session, order) == "to_refund":
        refund_no = await _refund(db, session, order.id, "declined in risk review")
    concluded = await reviews.conclude(session, review, status, actor=actor, reason=reason, number=number)
    after = {"status": status, "order_status": order.status, "reason": review.verdict_reason}
    if refund_no is not None:
        after["refund_no"] = refund_no
    if concluded.blocked:
        after["blocked"] = ", ".join(concluded.blocked)
    await audit.record(
        session,
        actor,
        "risk.review_approved"
        if status == "approved"
        else "risk.review_fraud"
        if status == "fraud"
        else "risk.review_declined",
        target=f"order:{number}",
        before=before,
        after=after,
    )
    return VerdictResult(number, status, order.status, refund_no, concluded.blocked, replayed=False)


async def _refund(db: Database, session: AsyncSession, order_id: int, reason: str) -> str | None:
    paid = await session.execute(
        select(Payment)
        .where(Payment.order_id == order_id, Payment.status.in_(("succeeded", "refunded")))
        .order_by(Payment.id)
    )
    refund_nos = []
    for payment in paid.scalars():
        if await refunds.remaining(session, payment) > 0:
            refund = await refunds.request_by_system(db, session, payment, reason=reason)
            refund_nos.append(refund.refund_no)
    return refund_nos[0] if refund_nos else None


@dataclass(frozen=True)
class Held:
    """A review with its order, as the queue shows it."""

    review: RiskReview
    order: orders.Order


async def queue(session: AsyncSession, *, limit: int = 100) -> list[Held]:
    """Open reviews, oldest first, with their orders (an expired unpaid one too: a late payment may come)."""
    waiting = await reviews.open_reviews(session, limit=limit)
    found = await orders.by_ids(session, [review.order_id for review in waiting])
    return [Held(review, found[review.order_id]) for review in waiting if review.order_id in found]


@dataclass(frozen=True)
class BuyerHistory:
    orders: list[orders.Order]  # earlier orders with the same contact, newest first
    refunded: int  # how many of them were refunded
    decisions: list[RiskDecision]
    reviews: list[RiskReview]


@dataclass(frozen=True)
class Case:
    held: Held
    decision: RiskDecision
    history: BuyerHistory


async def case(session: AsyncSession, number: str) -> Case:
    """One held order with its decision and its buyer's history (the review page's card)."""
    order = await orders.by_number(session, number)
    review = (await reviews.of_orders(session, [order.id])).get(order.id)
    if review is None:
        raise reviews.ReviewNotFound(number)
    earlier = [o for o in await orders.search(session, order.contact) if o.id != order.id] if order.contact else []
    known = await reviews.history(session, review)
    refunded = sum(1 for o in earlier if o.status == "refunded")
    history = BuyerHistory(earlier, refunded, known.decisions, known.reviews)
    return Case(Held(review, order), await reviews.decision_of(session, review), history)
