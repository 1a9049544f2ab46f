"""What payments know about abuse, for risk's learning: refunds and chargebacks a person flagged as fraud.

A refund counts when its reason names fraud (`fraud`, Stripe's `fraudulent`, 欺诈, 盗刷) or a chargeback
(`chargeback`, 拒付): each names the subjects of its order (the address, the contact typed, the verified
buyer) as the risk decision keyed them, at the order's creation, which is when the decision was made.
"""

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.orders import service as orders
from kaquan.payments.models import PaymentRefund
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
        subjects = RiskContext(
            "shop.order", ip=order.buyer_ip, contact=order.contact or None, account=order.buyer_contact
        ).subjects()
        found.extend(Evidence(key, order.created_at, source) for kind, key in subjects.items() if kind != "prefix")
    return found
