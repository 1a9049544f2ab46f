"""Many payments booked at once, each in its own transaction, onto the same gateway and channel accounts.

Balances move by relative UPDATEs (`balance = balance + delta`) at the end of
each booking, so no booking can overwrite another's: there is no read-then-write
to switch off, and hence no control experiment with the protection removed. What
can race is a payment booked twice at once, which the ledger's unique
(reference, kind) index settles.
"""

import asyncio

from tests.support.accounting import (
    balances,
    book_sale,
    books,
    delivered_order,
    given_costed_sku,
    ledger_problems,
    transfers,
)

from kaquan import accounting
from kaquan.kit.errors import DomainError
from kaquan.runtime import Runtime

ORDERS = 24
RECEIVABLE, FEES, SALES = "receivable:gateway:alipay:CNY", "fees:gateway:alipay:CNY", "sales:shop:CNY"


async def test_payments_booked_concurrently_on_the_same_accounts_add_up_exactly(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (ORDERS, 300))
    orders = [await delivered_order(rt, sku) for _ in range(ORDERS)]

    sales = await asyncio.gather(*(book_sale(rt, order) for order in orders))

    assert await balances(rt.db, RECEIVABLE, FEES, SALES, "cogs:CNY") == {
        RECEIVABLE: ORDERS * 1978,
        FEES: ORDERS * 12,
        SALES: ORDERS * 1990,
        "cogs:CNY": ORDERS * 300,
    }
    assert await ledger_problems(rt.db) == []
    assert await books(rt.db, [sale.record for sale in sales]) == []


async def test_one_payment_booked_by_many_at_once_is_posted_once(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (1, 0)))

    async def book() -> str:
        try:
            await rt.db.run(
                lambda session: accounting.book_payment(
                    rt.db,
                    session,
                    order=order,
                    gateway="alipay",
                    payment_ref="pay-1",
                    amount_minor=1990,
                    currency="CNY",
                    fee_minor=12,
                )
            )
        except DomainError as exc:
            return exc.code  # a concurrent twin committed first: this transaction rolled back, nothing posted
        return "ok"

    outcomes = await asyncio.gather(*(book() for _ in range(8)))

    assert "ok" in outcomes and set(outcomes) <= {"ok", "idempotency_conflict"}
    assert len(await transfers(rt.db, "payment")) == 1
    assert await balances(rt.db, RECEIVABLE, FEES, SALES) == {RECEIVABLE: 1978, FEES: 12, SALES: 1990}
    assert await ledger_problems(rt.db) == []
