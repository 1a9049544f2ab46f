"""Invariant checks on orders, read after the fact: benchmarks and fault tests run them on what a sale left behind."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import units_held
from kaquan.kit.db import Database
from kaquan.orders.models import Order

# An order awaiting payment holds its units reserved, a delivered one holds them sold or redeemed. Orders in other
# states may rightly hold fewer: expired and cancelled ones gave theirs back, a prepaid one waits to be filled.
HOLDING_STATUSES = ("pending_payment", "delivered")


@dataclass(frozen=True)
class Unmatched:
    """An order holding a number of units other than its quantity."""

    order_id: int
    number: str
    quantity: int
    held: int

    @property
    def short(self) -> int:
        """Units the order was sold but no longer holds (0 when it holds too many)."""
        return max(0, self.quantity - self.held)


async def check_holdings(db: Database, session: AsyncSession, *, source: str) -> list[Unmatched]:
    """Every order from `source` awaiting payment or delivered whose held units differ from its quantity, by id.

    Empty when every such order holds exactly what it bought. A unit sold twice shows
    here: inventory rows name one holder, so the second sale takes the unit from the first order.
    """
    rows = (
        await session.execute(
            select(Order.id, Order.number, Order.quantity)
            .where(Order.source == source, Order.status.in_(HOLDING_STATUSES))
            .order_by(Order.id)
        )
    ).all()
    held = await units_held(db, session, [row.id for row in rows])
    return [
        Unmatched(row.id, row.number, row.quantity, held.get(row.id, 0))
        for row in rows
        if held.get(row.id, 0) != row.quantity
    ]


@dataclass(frozen=True)
class SkuOrders:
    """What a SKU's orders came to: how many ended in each status, and those holding other than their quantity."""

    by_status: dict[str, int]
    unmatched: list[Unmatched]


async def orders_of_sku(db: Database, session: AsyncSession, sku_id: int) -> SkuOrders:
    """Every order of a SKU counted by status, and every one awaiting payment or delivered whose held units
    differ from its quantity (a unit sold twice shows there, as in `check_holdings`)."""
    rows = (
        await session.execute(
            select(Order.id, Order.number, Order.quantity, Order.status)
            .where(Order.sku_id == sku_id)
            .order_by(Order.id)
        )
    ).all()
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + 1
    holding = [row for row in rows if row.status in HOLDING_STATUSES]
    held = await units_held(db, session, [row.id for row in holding])
    unmatched = [
        Unmatched(row.id, row.number, row.quantity, held.get(row.id, 0))
        for row in holding
        if held.get(row.id, 0) != row.quantity
    ]
    return SkuOrders(by_status, unmatched)
