"""What payments know about abuse, for risk's learning: chargebacks, and refunds a person flagged as fraud.

Every chargeback a gateway reported (`payment_chargebacks`) names the subjects of its order, unless its
dispute was won: the card's bank then ruled the charge genuine.

A refund counts when its reason names fraud (`fraud`, Stripe's `fraudulent`, 欺诈, 盗刷) or a chargeback
(`chargeback`, 拒付): each names the subjects of its order (the address, the contact typed, the verified
buyer) as the risk decision keyed them, at the order's creation, which is when the decision was made.
"""

from datetime import datetime

from sqlalchemy import func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.payments.models import PaymentChargeback, PaymentRefund
from kaquan.risk import Evidence, RiskContext

FRAUD_WORDS = ("fraud", "欺诈", "盗刷")
CHARGEBACK_WORDS = ("chargeback", "拒付")
MAX_REFUNDS = 100_000


async def fraud_evidence(session: AsyncSession, *, since: datetime | None = None) -> list[Evidence]:
    reason = func.lower(PaymentRefund.reason)
    stmt = (
        select(PaymentRefund.order_id, PaymentRefund.reason)
        .where(
            PaymentRefund.status != "rejected",
            or_(*(reason.contains(word) for word in (*FRAUD_WORDS, *CHARGEBACK_WORDS))),
        )
        .order_by(PaymentRefund.id)
        .limit(MAX_REFUNDS)
    )
    if since is not None:
        stmt = stmt.where(PaymentRefund.created_at >= since)
    flagged = (await session.execute(stmt)).all()
    placed = await orders.by_ids(session, [order_id for order_id, _ in flagged])
    found: list[Evidence] = []
    for order_id, why in flagged:
        order = placed.get(order_id)
        if order is None:
            continue
        source = "chargeback" if any(word in why.lower() for word in CHARGEBACK_WORDS) else "refund"
        found.extend(Evidence(key, order.created_at, source) for key in order_subjects(order))
    disputed = (
        await session.execute(
            select(PaymentChargeback.order_id)
            .where(
                PaymentChargeback.received_at >= since if since is not None else true(),
                PaymentChargeback.status != "won",
            )
            .order_by(PaymentChargeback.id)
            .limit(MAX_REFUNDS)
        )
    ).scalars()
    for order in (await orders.by_ids(session, list(disputed))).values():
        found.extend(Evidence(key, order.created_at, "chargeback") for key in order_subjects(order))
    return found


def order_subjects(order: Order) -> list[str]:
    """The subject keys the order's risk decision counted it by, as the decision keyed them (account first)."""
    subjects = RiskContext(
        "shop.order", ip=order.buyer_ip, contact=order.contact or None, account=order.buyer_contact
    ).subjects()
    return [subjects[kind] for kind in ("account", "contact", "ip") if kind in subjects]
