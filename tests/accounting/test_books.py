"""`check_books`: the ledger agrees with the orders and the payments, and every disagreement is named."""

from tests.support.accounting import book_sale, books, delivered_order, given_costed_sku

from kaquan import accounting
from kaquan.accounting import PaidRecord, RefundRecord
from kaquan.orders.service import Order
from kaquan.runtime import Runtime


async def book_refund(rt: Runtime, order: Order, refund_no: str, amount: int, fee_back: int) -> None:
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


async def test_books_of_sales_and_a_partial_refund_agree(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (5, 500))
    first = await book_sale(rt, await delivered_order(rt, sku))
    second = await book_sale(rt, await delivered_order(rt, sku, quantity=2))
    await book_refund(rt, second.order, "R-1", 1000, 6)

    refunds = [RefundRecord("R-1", second.record.payment_ref, 1000, "CNY", fee_back_minor=6)]
    assert await books(rt.db, [first.record, second.record], refunds) == []


async def test_a_succeeded_payment_missing_from_the_ledger_is_named_by_its_order_and_payment(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    record = PaidRecord("pay-1", order.number, "alipay", 1990, "CNY", 12)

    problems = await books(rt.db, [record])

    assert f"order {order.number}: payment pay-1 (¥19.90 via alipay) is not on the ledger" in problems
    assert "CNY sales of channel shop: ¥0.00 on the ledger, ¥19.90 by the payments and orders" in problems


async def test_a_sale_booked_twice_is_named_with_both_bookings(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    sale = await book_sale(rt, order, ref="pay-1")
    await book_sale(rt, order, ref="pay-1-retry")  # a retry that minted a new reference

    problems = await books(rt.db, [sale.record])

    assert f"order {order.number}: its sale is booked 2 times (payment:pay-1, payment:pay-1-retry), paid 1 time(s)" in (
        problems
    )
    assert any(p.startswith("ledger payment payment:pay-1-retry (transfer ") for p in problems)
    assert any(p.endswith(": no succeeded payment pay-1-retry") for p in problems)


async def test_a_reversal_without_a_completed_refund_and_a_refund_never_reversed_are_named(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    sale = await book_sale(rt, order, ref="pay-1")
    await book_refund(rt, order, "R-orphan", 500, 3)
    never_reversed = RefundRecord("R-lost", "pay-1", 700, "CNY")

    problems = await books(rt.db, [sale.record], [never_reversed])

    assert any(p.startswith("ledger refund refund:R-orphan (transfer ") for p in problems)
    assert any(p.endswith(": no completed refund R-orphan") for p in problems)
    assert f"refund R-lost of payment pay-1 (order {order.number}): ¥7.00 not reversed on the ledger" in problems


async def test_a_refund_of_an_unknown_payment_and_more_refunded_than_paid_are_named(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    sale = await book_sale(rt, order, ref="pay-1")
    await book_refund(rt, order, "R-1", 1990, 12)
    await book_refund(rt, order, "R-2", 1, 0)
    refunds = [RefundRecord("R-1", "pay-1", 1990, "CNY"), RefundRecord("R-2", "pay-1", 1, "CNY")]

    problems = await books(rt.db, [sale.record], [*refunds, RefundRecord("R-3", "pay-404", 5, "CNY")])

    assert f"payment pay-1 (order {order.number}): refunded ¥19.91, more than the ¥19.90 paid" in problems
    assert "refund R-3: refunds payment pay-404, which is not a succeeded payment" in problems


async def test_a_paid_order_that_neither_a_payment_nor_the_ledger_names_is_named(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))

    assert await books(rt.db, []) == [
        f"order {order.number} (shop): paid, but neither a succeeded payment nor a ledger sale names it"
    ]


async def test_a_delivered_order_whose_cost_of_goods_is_not_booked_is_named(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 500)))
    async with rt.db.transaction() as session:
        await accounting.book_payment(
            rt.db,
            session,
            order=order,
            gateway="alipay",
            payment_ref="pay-1",
            amount_minor=1990,
            currency="CNY",
            fee_minor=12,
        )

    problems = await books(rt.db, [PaidRecord("pay-1", order.number, "alipay", 1990, "CNY", 12)])

    assert problems == [f"order {order.number}: delivered, but its cost of goods (¥5.00) is not on the ledger"]


async def test_a_payment_booked_for_other_amounts_or_another_gateway_is_named(rt: Runtime) -> None:
    order = await delivered_order(rt, await given_costed_sku(rt, (3, 0)))
    sale = await book_sale(rt, order, ref="pay-1", gateway="wechat")
    says = PaidRecord("pay-1", order.number, "alipay", 1990, "CNY", 10)

    problems = await books(rt.db, [says])

    head = f"order {order.number}: payment pay-1"
    assert sale.record.gateway == "wechat"
    assert f"{head} went through alipay, but is booked to fees:gateway:wechat:CNY, receivable:gateway:wechat:CNY" in (
        problems
    )
    assert f"{head}: fee booked ¥0.00, the payment says ¥0.10" in problems
