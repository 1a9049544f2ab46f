"""Money taken is money accounted for: a second charge for a settled payment is refunded."""

from sqlalchemy import select
from tests.support.builders import given_sku_with_codes, pay, place_order, stock_of

from kaquan.payments import notifications
from kaquan.payments import service as payments
from kaquan.payments.models import Payment, PaymentRefund
from kaquan.runtime import Runtime
from kaquan.worker import run_once


async def _charge(rt: Runtime, token: str, txn_id: str) -> str:
    async with rt.db.read() as session:
        payment = await payments.by_token(session, token)
    headers, body = rt.dev_gateway.notification(token, payment.amount_minor, payment.currency, txn_id)
    return (await notifications.receive(rt.db, rt.dev_gateway, headers, body)).outcome


async def test_a_second_charge_for_a_paid_order_is_refunded_and_delivers_nothing_more(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    _, _, token = await place_order(rt, sku, 2)
    assert await pay(rt, token) == "delivered"

    assert await _charge(rt, token, "second-charge") == "second_charge_refunding"
    assert await _charge(rt, token, "second-charge") == "duplicate"
    await run_once(rt)

    async with rt.db.read() as session:
        charges = list((await session.execute(select(Payment).order_by(Payment.id))).scalars())
    assert [(p.status, p.gateway_txn_id) for p in charges] == [
        ("succeeded", f"txn-{token}"),
        ("refunded", "second-charge"),
    ]
    async with rt.db.read() as session:
        refunds = list((await session.execute(select(PaymentRefund))).scalars())
    assert [(r.payment_id, r.amount_minor, r.status, r.requested_by) for r in refunds] == [
        (charges[1].id, charges[1].amount_minor, "succeeded", "system")
    ]
    assert refunds[0].provider_ref
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.sold) == (3, 2)


async def test_the_same_charge_delivered_twice_is_one_payment(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    _, _, token = await place_order(rt, sku, 1)

    outcomes = [await _charge(rt, token, "only-charge") for _ in range(3)]

    assert outcomes == ["delivered", "duplicate", "duplicate"]
    assert (await stock_of(rt, sku)).sold == 1
