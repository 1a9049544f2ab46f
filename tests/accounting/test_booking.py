"""Every sale on the ledger: a gateway payment, its refunds and chargebacks, and the cost of the codes handed out."""

import pytest
from tests.support.accounting import (
    ALIPAY_RATE_BP,
    balances,
    book_sale,
    delivered_order,
    given_costed_segment_sku,
    given_costed_sku,
    ledger_problems,
    transfers,
)

from kaquan import accounting
from kaquan.inventory import refunds as inventory_refunds
from kaquan.kit.errors import IdempotencyConflict
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.runtime import Runtime

RECEIVABLE, FEES, SALES = "receivable:gateway:alipay:CNY", "fees:gateway:alipay:CNY", "sales:shop:CNY"
COGS, INVENTORY = "cogs:CNY", "inventory:CNY"


async def refund(rt: Runtime, order: Order, refund_no: str, amount: int, fee_back: int) -> None:
    async with rt.db.transaction() as session:
        await accounting.book_refund(
            rt.db,
            session,
            order=order,
            gateway="alipay",
            refund_no=refund_no,
            amount_minor=amount,
            currency="CNY",
            fee_back_minor=fee_back,
        )


async def test_a_nineteen_ninety_sale_through_alipay_books_the_receivable_net_of_the_fee(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (3, 0))
    order = await delivered_order(rt, sku)

    await book_sale(rt, order)

    assert await balances(rt.db, RECEIVABLE, FEES, SALES) == {RECEIVABLE: 1978, FEES: 12, SALES: 1990}
    [sale] = await transfers(rt.db, "payment")
    assert sale.reference == f"payment:pay-{order.number}"
    assert sorted((leg.account_code, leg.debit_minor) for leg in sale.legs) == [
        (FEES, 12),
        (RECEIVABLE, 1978),
        (SALES, -1990),
    ]
    assert sum(leg.debit_minor for leg in sale.legs) == 0
    assert await ledger_problems(rt.db) == []


async def test_booking_the_same_payment_again_posts_nothing_and_other_amounts_are_a_conflict(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 100)))
    await book_sale(rt, order, ref="pay-1")

    await book_sale(rt, order, ref="pay-1")
    with pytest.raises(IdempotencyConflict):
        async with rt.db.transaction() as session:
            await accounting.book_payment(
                rt.db,
                session,
                order=order,
                gateway="alipay",
                payment_ref="pay-1",
                amount_minor=1990,
                currency="CNY",
                fee_minor=11,
            )

    assert len(await transfers(rt.db, "payment")) == 1
    assert len(await transfers(rt.db, "cogs")) == 1
    assert await balances(rt.db, RECEIVABLE, FEES, SALES, COGS) == {RECEIVABLE: 1978, FEES: 12, SALES: 1990, COGS: 100}


async def test_a_partial_then_a_full_refund_reverse_the_sale_exactly_with_the_fee_given_back_by_parts(
    rt: Runtime,
) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    await book_sale(rt, order)
    fee = accounting.gateway_fee(1990, ALIPAY_RATE_BP)

    first_back = accounting.fee_returned(fee_minor=fee, paid_minor=1990, refunded_before_minor=0, refund_minor=990)
    await refund(rt, order, "R-1", 990, first_back)
    after_first = await balances(rt.db, RECEIVABLE, FEES, SALES)
    second_back = accounting.fee_returned(fee_minor=fee, paid_minor=1990, refunded_before_minor=990, refund_minor=1000)
    await refund(rt, order, "R-2", 1000, second_back)
    await refund(rt, order, "R-2", 1000, second_back)  # the gateway's notification, again

    assert (first_back, second_back) == (6, 6)
    assert after_first == {RECEIVABLE: 1978 - 984, FEES: 6, SALES: 1000}
    assert await balances(rt.db, RECEIVABLE, FEES, SALES) == {RECEIVABLE: 0, FEES: 0, SALES: 0}
    assert [t.reference for t in await transfers(rt.db, "payment_refund")] == ["refund:R-1", "refund:R-2"]
    assert await ledger_problems(rt.db) == []


async def test_a_chargeback_reverses_the_sale_and_books_the_dispute_fee(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    await book_sale(rt, order)

    async with rt.db.transaction() as session:
        await accounting.book_chargeback(
            rt.db,
            session,
            order=order,
            gateway="alipay",
            chargeback_no="CB-1",
            amount_minor=1990,
            currency="CNY",
            fee_back_minor=0,
            dispute_fee_minor=1500,
        )

    assert await balances(rt.db, RECEIVABLE, FEES, SALES) == {RECEIVABLE: 1978 - 1990 - 1500, FEES: 12 + 1500, SALES: 0}
    assert [t.reference for t in await transfers(rt.db, "chargeback")] == ["chargeback:CB-1"]
    assert await ledger_problems(rt.db) == []


async def test_a_booking_in_another_currency_or_with_a_fee_above_the_amount_is_refused_and_posts_nothing(
    rt: Runtime,
) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    bad = [(1990, "USD", 12), (1990, "CNY", 1991), (0, "CNY", 0), (1990, "CNY", -1)]
    for amount, currency, fee in bad:
        with pytest.raises(accounting.InvalidBooking):
            async with rt.db.transaction() as session:
                await accounting.book_payment(
                    rt.db,
                    session,
                    order=order,
                    gateway="alipay",
                    payment_ref="pay-x",
                    amount_minor=amount,
                    currency=currency,
                    fee_minor=fee,
                )

    assert await transfers(rt.db, "payment") == []


async def test_the_cost_of_goods_is_the_sum_of_the_unit_costs_of_the_batches_the_codes_came_from(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (2, 500), (2, 800), (2, 0))
    first = await delivered_order(rt, sku, quantity=3)  # two codes at 5.00, one at 8.00
    second = await delivered_order(rt, sku, quantity=3)  # one at 8.00, two free

    await book_sale(rt, first)
    await book_sale(rt, second)

    cogs = {t.reference: t.moved(COGS) for t in await transfers(rt.db, "cogs")}
    assert cogs == {f"cogs:{first.number}": 1800, f"cogs:{second.number}": 800}
    assert await balances(rt.db, COGS, INVENTORY) == {COGS: 2600, INVENTORY: -2600}


async def test_serials_of_a_segment_cost_their_segment_batch_unit_cost(rt: Runtime) -> None:
    sku = await given_costed_segment_sku(rt, units=100, unit_cost=30)
    order = await delivered_order(rt, sku, quantity=7)

    await book_sale(rt, order)

    assert await balances(rt.db, COGS, INVENTORY) == {COGS: 210, INVENTORY: -210}


async def test_codes_voided_by_a_refund_stay_a_cost_they_never_return_to_inventory(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 500)), quantity=2)
    await book_sale(rt, order)

    async with rt.db.transaction() as session:
        await inventory_refunds.void_sold_codes(session, order.id, quantity=2)
        await orders.mark_refunded(rt.db, session, order.id, note="refunded")
        await accounting.book_delivery(rt.db, session, order)  # booked again after the void: still the same cost
    await refund(rt, order, "R-1", 3980, 24)

    assert await balances(rt.db, COGS, INVENTORY, SALES) == {COGS: 1000, INVENTORY: -1000, SALES: 0}
    assert len(await transfers(rt.db, "cogs")) == 1


async def test_an_order_of_free_stock_books_no_cost_of_goods(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))

    await book_sale(rt, order)

    assert await transfers(rt.db, "cogs") == []
