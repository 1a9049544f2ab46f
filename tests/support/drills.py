"""Restore drills: the invariants a restored database must keep, checked on any database kaquan runs on.

`broken_invariants` names every broken one: stock that does not add up, units sold that no delivered
order accounts for, a ledger out of balance or disagreeing with orders and payments, an audit chain
that does not verify, a paid order neither delivered nor refunded. A drill asserts it is [].
"""

from sqlalchemy import func, select

from kaquan import accounting, ledger
from kaquan.audit import service as audit
from kaquan.inventory.levels import stock
from kaquan.kit.db import Database
from kaquan.orders.models import Order
from kaquan.payments import refunds as payment_refunds

# A paid order the worker has not delivered or refunded yet; after a worker pass there must be none.
UNFINISHED_PAID = ("processing", "paid", "paid_unfulfilled")


async def broken_invariants(db: Database) -> list[str]:
    problems: list[str] = []
    async with db.read() as session:
        levels = await stock(session)
        for row in levels:
            if row.available + row.reserved + row.sold + row.voided != row.imported:
                problems.append(f"stock of SKU {row.sku_id} does not add up: {row}")
        sold_by_order = select(Order.sku_id, func.sum(Order.quantity)).where(Order.status == "delivered")
        delivered = {sku: int(units) for sku, units in await session.execute(sold_by_order.group_by(Order.sku_id))}
        for row in levels:
            if row.sold != int(delivered.get(row.sku_id, 0)):
                problems.append(f"SKU {row.sku_id}: {row.sold} sold, delivered orders hold {delivered.get(row.sku_id)}")
        books = await ledger.check(session)
        problems += [f"ledger: {problem}" for problem in books.problems]
        paid, refunds = await payment_refunds.books_records(session)
        problems += [f"books: {problem}" for problem in await accounting.check_books(session, paid, refunds)]
        chain = await audit.verify(session)
        if not chain.ok:
            problems.append(f"audit chain breaks at entry {chain.bad_id}: {chain.reason}")
        stuck = (await session.execute(select(Order.number).where(Order.status.in_(UNFINISHED_PAID)))).scalars()
        problems += [f"order {number} is paid but neither delivered nor refunded" for number in stuck]
    return problems


async def order_numbers(db: Database) -> set[str]:
    async with db.read() as session:
        return set((await session.execute(select(Order.number))).scalars())
