"""Sending a delivered order's delivery notice to its buyer again (the buyer lost the mail, say).

The notice is the `order.delivered` event again, marked `resend`, to the
contact the order already has: support never sees or types the codes, and
cannot send them elsewhere. A few times an hour per order at most, so a
support account cannot be used to flood a buyer; every resend is audited.
"""

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.kit import outbox
from kaquan.kit.errors import Conflict
from kaquan.kit.ratelimit import RateLimiter, enforce
from kaquan.orders.service import Order, by_number

DELIVERED_TOPIC = "order.delivered"
WINDOW_S = 3600


class NotDelivered(Conflict):
    code = "order_not_delivered"

    def __init__(self, order: Order) -> None:
        super().__init__(
            f"order {order.number} is {order.status}: only a delivered order's notice is sent again",
            number=order.number,
            status=order.status,
        )


async def resend_delivery(
    session: AsyncSession, limiter: RateLimiter, number: str, *, actor: str, per_hour: int, ip: str | None = None
) -> Order:
    """Queue the delivery notice of a delivered order again, in the caller's transaction."""
    order = await by_number(session, number)
    if order.status != "delivered":
        raise NotDelivered(order)
    await enforce(limiter, f"resend:{order.number}", limit=per_hour, window_s=WINDOW_S, what="resends of this order")
    # A resend is a notice of its own (`resend_id`): sent once, however often the worker runs its event.
    payload = {"order_id": order.id, "number": order.number, "resend": True, "resend_id": secrets.token_hex(8)}
    await outbox.enqueue(session, DELIVERED_TOPIC, payload)
    await audit.record(
        session,
        actor,
        "order.delivery_resent",
        target=f"order:{order.number}",
        after={"contact_on_file": bool(order.contact)},
        ip=ip,
    )
    return order
