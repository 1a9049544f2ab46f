"""Order states and the moves between them, defined once."""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import allocation
from kaquan.kit import clock
from kaquan.orders.errors import IllegalOrderTransition
from kaquan.orders.models import Order, OrderEvent

ALLOWED: dict[str, frozenset[str]] = {
    "pending_payment": frozenset({"paid", "cancelled", "expired"}),
    "expired": frozenset({"paid"}),  # a late payment: re-allocated, or refunded
    "cancelled": frozenset({"paid"}),
    "paid": frozenset({"delivered", "paid_unfulfilled"}),
    "paid_unfulfilled": frozenset({"refunded"}),
    # A prepaid order (agents): paid from the balance when accepted, filled by the worker.
    "processing": frozenset({"delivered", "refunded"}),
    # An after-sale refund, only once the order's codes were taken back (see `move`).
    "delivered": frozenset({"refunded"}),
    "refunded": frozenset(),
}
UNPAID = frozenset({"pending_payment", "expired", "cancelled"})
FINAL = frozenset(status for status, targets in ALLOWED.items() if not targets)


async def move(session: AsyncSession, order: Order, target: str, *, note: str = "") -> None:
    """Move a locked order to `target`, stamping the matching time and recording the event.

    A delivered order is refunded only once it holds no code in use (sold or
    redeemed): a refund that only changed the status would give the buyer the
    money back and leave it the codes (`orders.mark_refunded` records a refund
    and nothing else, so it must keep failing for a delivered order).
    """
    if target not in ALLOWED[order.status]:
        raise IllegalOrderTransition(order.number, order.status, target)
    if order.status == "delivered" and await _holds_codes_in_use(session, order.id):
        raise IllegalOrderTransition(order.number, order.status, target)
    at = clock.now()
    session.add(OrderEvent(order_id=order.id, at=at, from_status=order.status, to_status=target, note=note))
    order.status = target
    if target == "paid":
        order.paid_at = at
    elif target == "delivered":
        order.delivered_at = at
    elif target in ("cancelled", "expired", "refunded"):
        order.closed_at = at


async def _holds_codes_in_use(session: AsyncSession, order_id: int) -> bool:
    for status in ("sold", "redeemed"):
        if await allocation.held_units(session, order_id, status):
            return True
    return False
