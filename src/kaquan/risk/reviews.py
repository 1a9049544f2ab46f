"""The review queue's own part: which orders a `review` decision holds, and a person's verdict on them.

A held order has one `risk_reviews` row, opened in the transaction that placed the order together with
the decision's row (so the verdict can label that decision). The order, its payment and its refund are
other modules' business: `payments.review` takes a verdict, locks the order, does what the verdict means
to it, and calls `conclude` here, which closes the review, labels the decision ('legit' for an approval,
'fraud' for a fraud verdict; a plain decline says nothing about the buyer and leaves it unlabelled) and,
for fraud, puts the buyer's contact, device and address on the block list.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, NotFound
from kaquan.risk import lists
from kaquan.risk.decisions import Decision
from kaquan.risk.models import LIST_KINDS, RiskListEntry
from kaquan.risk.models import RiskDecision as RiskDecision
from kaquan.risk.models import RiskReview as RiskReview

VERDICTS = ("approved", "declined", "fraud")
LABEL_OF = {"approved": "legit", "fraud": "fraud", "declined": None}
BLOCKED_BY_FRAUD = ("contact", "device", "ip")
MAX_REASON = 300
HISTORY = 20


class ReviewNotFound(NotFound):
    code = "risk_review_not_found"

    def __init__(self, order: str) -> None:
        super().__init__(f"order {order} is not held for review", order=order)


class ReviewConcluded(Conflict):
    """Another verdict was given first: the first one stands."""

    code = "risk_review_concluded"

    def __init__(self, order: str, status: str, by: str | None) -> None:
        super().__init__(f"order {order} was {status} in review already", status=status, by=by)


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise BadInput(f"a verdict's reason is at most {MAX_REASON} characters", field="reason")
    return reason


async def hold(session: AsyncSession, decision: Decision, *, order_id: int, placed: bool) -> RiskReview | None:
    """Record a `review` decision and hold the order it placed. A retry that found its order placed before
    (`placed` false) only records the decision: an order approved or delivered already is never held after."""
    if decision.row is None:
        raise ValueError("only a decision that holds (Decision.holds) opens a review")
    subjects: dict[str, str] = decision.row["subjects"]
    row = {key: value for key, value in decision.row.items() if key != "subjects"}
    decision_id = (await session.execute(insert(RiskDecision).values(**row).returning(RiskDecision.id))).scalar_one()
    if not placed:
        return None
    review = RiskReview(
        order_id=order_id,
        decision_id=decision_id,
        opened_at=row["at"],
        score=decision.score,
        reasons=list(row["reasons"]),
        ip=subjects.get("ip"),
        device=subjects.get("device"),
        contact=subjects.get("contact"),
        account=subjects.get("account"),
        status="open",
        verdict_reason="",
    )
    session.add(review)
    await session.flush()
    return review


async def status_of(session: AsyncSession, order_id: int) -> str | None:
    """The review state of an order: None (never held), 'open', or the verdict."""
    found = await session.execute(select(RiskReview.status).where(RiskReview.order_id == order_id))
    return found.scalar_one_or_none()


async def locked(db: Database, session: AsyncSession, order_id: int, *, number: str) -> RiskReview:
    stmt = db.lock(select(RiskReview).where(RiskReview.order_id == order_id)).execution_options(populate_existing=True)
    review = (await session.execute(stmt)).scalar_one_or_none()
    if review is None:
        raise ReviewNotFound(number)
    return review


@dataclass(frozen=True)
class Concluded:
    review: RiskReview
    blocked: list[str]  # list keys this verdict put on the block list (`contact:<digest>`, …)


async def conclude(
    session: AsyncSession, review: RiskReview, verdict: str, *, actor: str, reason: str, number: str
) -> Concluded:
    """Close an open review with `verdict` (the caller holds its lock), label its decision, block on fraud."""
    if verdict not in VERDICTS:
        raise BadInput(f"a verdict is one of {', '.join(VERDICTS)}", field="verdict")
    if review.status != "open":
        raise ReviewConcluded(number, review.status, review.verdict_by)
    review.status = verdict
    review.verdict_by = actor[:120]
    review.verdict_at = clock.now()
    review.verdict_reason = check_reason(reason)
    label = LABEL_OF[verdict]
    if label is not None:
        await session.execute(update(RiskDecision).where(RiskDecision.id == review.decision_id).values(label=label))
    blocked: list[str] = []
    if verdict == "fraud":
        for kind in BLOCKED_BY_FRAUD:
            key: str | None = getattr(review, kind)
            if key is not None and await _block(session, key, actor=actor, note=f"fraud in review of order {number}"):
                blocked.append(key)
    await session.flush()
    return Concluded(review, blocked)


async def _block(session: AsyncSession, key: str, *, actor: str, note: str) -> bool:
    """Put a subject key on the block list unless it is on a list already (then an operator chose its verdict)."""
    kind, _, value = key.partition(":")
    if kind not in LIST_KINDS:
        return False
    listed = await session.execute(
        select(RiskListEntry.id).where(RiskListEntry.kind == kind, RiskListEntry.value == value)
    )
    if listed.first() is not None:
        return False
    await lists.add(session, kind, value, "block", note=note, actor=actor)
    return True


async def open_reviews(session: AsyncSession, *, limit: int = 100) -> list[RiskReview]:
    """Reviews waiting for a verdict, oldest first (the queue works from the front)."""
    stmt = select(RiskReview).where(RiskReview.status == "open").order_by(RiskReview.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def of_orders(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, RiskReview]:
    if not order_ids:
        return {}
    rows = await session.execute(select(RiskReview).where(RiskReview.order_id.in_(order_ids)))
    return {review.order_id: review for review in rows.scalars()}


async def decision_of(session: AsyncSession, review: RiskReview) -> RiskDecision:
    return (await session.execute(select(RiskDecision).where(RiskDecision.id == review.decision_id))).scalar_one()


@dataclass(frozen=True)
class SubjectHistory:
    """What risk knows of a held order's buyer besides this order: earlier decisions and reviews that share
    its contact, device, address or account."""

    decisions: list[RiskDecision]
    reviews: list[RiskReview]


async def history(session: AsyncSession, review: RiskReview, *, limit: int = HISTORY) -> SubjectHistory:
    keys = [key for key in (review.account, review.contact, review.device, review.ip) if key]
    if not keys:
        return SubjectHistory([], [])
    decisions = await session.execute(
        select(RiskDecision)
        .where(RiskDecision.subject.in_(keys), RiskDecision.id != review.decision_id)
        .order_by(RiskDecision.id.desc())
        .limit(limit)
    )
    same = [column.in_(keys) for column in (RiskReview.contact, RiskReview.device, RiskReview.ip)]
    reviews = await session.execute(
        select(RiskReview).where(or_(*same), RiskReview.id != review.id).order_by(RiskReview.id.desc()).limit(limit)
    )
    return SubjectHistory(list(decisions.scalars()), list(reviews.scalars()))


ORDER_ACTIONS = ("shop.order", "flash.purchase")
DECIDED_BEFORE = timedelta(minutes=2)  # a decision is made just before its order is placed
PLACED_SLACK = timedelta(seconds=5)


async def label_order_fraud(
    session: AsyncSession, order_id: int, *, subjects: Sequence[str], placed_at: datetime
) -> int | None:
    """Label as fraud the decision that let an order through, on later proof (a chargeback); its id, or None.

    A held order's decision is its review's. Any other order's decision was recorded behind, without the
    order: it is the latest approved or challenged order decision whose subject is one of the order's
    (`subjects`: its account, contact and address keys, as the decision keyed them) in the two minutes
    before the order was placed. A reviewer's earlier `legit` gives way: a chargeback is the stronger proof.
    """
    decision_id = (
        await session.execute(select(RiskReview.decision_id).where(RiskReview.order_id == order_id))
    ).scalar_one_or_none()
    if decision_id is None and subjects:
        decision_id = (
            await session.execute(
                select(RiskDecision.id)
                .where(
                    RiskDecision.subject.in_(list(subjects)),
                    RiskDecision.action.in_(ORDER_ACTIONS),
                    RiskDecision.outcome != "decline",
                    RiskDecision.at >= placed_at - DECIDED_BEFORE,
                    RiskDecision.at <= placed_at + PLACED_SLACK,
                )
                .order_by(RiskDecision.at.desc(), RiskDecision.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if decision_id is None:
        return None
    await session.execute(update(RiskDecision).where(RiskDecision.id == decision_id).values(label="fraud"))
    return int(decision_id)


async def label_decision_legit(session: AsyncSession, decision_id: int) -> None:
    """Label a decision legit on later proof that its order was not fraud: a dispute the merchant won (the
    card's bank ruled the charge genuine, after the evidence). It overrides the chargeback's `fraud`, as the
    chargeback overrode a reviewer's `legit`: the latest, strongest proof is what the model learns."""
    await session.execute(update(RiskDecision).where(RiskDecision.id == decision_id).values(label="legit"))
