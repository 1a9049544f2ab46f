"""Orders that took money: what the books must account for."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.orders.models import Order

PAGE = 5000


@dataclass(frozen=True)
class PaidOrder:
    id: int
    number: str
    channel: str
    source: str
    total_minor: int
    currency: str
    status: str
    delivered: bool  # codes were handed out (it may have been refunded since)


async def paid_orders(session: AsyncSession, *, page: int = PAGE) -> AsyncIterator[list[PaidOrder]]:
    """Every order ever paid (a gateway payment, a deposit, a marketplace), in pages by id, oldest first."""
    after = 0
    while True:
        rows = await session.execute(
            select(
                Order.id,
                Order.number,
                Order.channel,
                Order.source,
                Order.total_minor,
                Order.currency,
                Order.status,
                Order.delivered_at,
            )
            .where(Order.paid_at.is_not(None), Order.id > after)
            .order_by(Order.id)
            .limit(page)
        )
        found = [
            PaidOrder(
                row.id,
                row.number,
                row.channel,
                row.source,
                row.total_minor,
                row.currency,
                row.status,
                delivered=row.delivered_at is not None,
            )
            for row in rows
        ]
        if not found:
            return
        yield found
        after = found[-1].id
