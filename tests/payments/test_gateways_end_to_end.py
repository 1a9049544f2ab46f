"""Every installed gateway, end to end against its provider's simulator: the same story for each.

The simulator is the provider seen from its side (its own keys, its trade
state, its signed notifications); kaquan talks to it only through the adapter,
over HTTP in the provider's protocol. What must hold for every provider:
a paid trade delivers exactly once, a lost notification is found by the
worker's query, duplicates change nothing, a refund goes back through the
provider exactly once, and a partial refund leaves the order delivered.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.builders import GivenSku, given_sku_with_codes, stock_of

from kaquan import accounting, ledger
from kaquan.kit import clock
from kaquan.orders import service as orders
from kaquan.payments import refunds, registry, sweeps
from kaquan.payments import service as payments
from kaquan.payments.models import Payment, PaymentCallback, PaymentRefund
from kaquan.payments.plugins import GatewayPlugin, GatewaySetup, Simulation, load_plugins
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.worker import run_once

PUBLIC_URL = "http://shop.test"
PLUGINS = {plugin.name: plugin for plugin in load_plugins()}


def test_the_three_providers_the_issue_names_are_installed() -> None:
    assert {"alipay", "wechatpay", "stripe"} <= set(PLUGINS)


@dataclass
class Shop:
    rt: Runtime
    simulation: Simulation

    @property
    def name(self) -> str:
        return self.simulation.gateway.name


@pytest.fixture(params=sorted(PLUGINS))
async def shop(request: pytest.FixtureRequest, rt: Runtime, tmp_path: Path) -> AsyncIterator[Shop]:
    plugin: GatewayPlugin = PLUGINS[request.param]
    app = create_app(rt=rt)
    setup = GatewaySetup(
        settings=rt.settings,
        public_url=PUBLIC_URL,
        state_dir=tmp_path / "gateways",
        notify_transport=httpx.ASGITransport(app=app),
    )
    simulation = plugin.simulated(setup)
    registry.configure([simulation.gateway], public_url=PUBLIC_URL)
    yield Shop(rt, simulation)
    await simulation.provider.drain()
    registry.configure([])


async def an_unpaid_order(shop: Shop, *, quantity: int = 1, price_minor: int = 1990) -> tuple[str, str]:
    """An order held for the buyer and its pending payment at the simulated provider: (order number, token)."""
    sku = await given_sku_with_codes(shop.rt, 5, price_minor=price_minor)
    async with shop.rt.db.transaction() as session:
        placed = await orders.place(
            shop.rt.db,
            session,
            shop.rt.order_keys,
            orders.OrderRequest(sku=sku.id, quantity=quantity, idempotency_key=f"k-{sku.id}", client_token="c" * 22),
            max_per_order=shop.rt.settings.max_per_order,
            hold_minutes=shop.rt.settings.hold_minutes,
        )
        payment = await payments.start(session, shop.simulation.gateway, placed.order)
        return placed.order.number, payment.token


async def chosen(shop: Shop, token: str, method: str | None = None) -> payments.Chosen:
    method = method or shop.simulation.gateway.methods[0]
    return await payments.choose(
        shop.rt.db,
        token,
        f"{shop.name}:{method}",
        public_url=PUBLIC_URL,
        payer=payments.Payer(client_ip="203.0.113.9", payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
    )


async def order_status(shop: Shop, number: str) -> str:
    async with shop.rt.db.read() as session:
        return (await orders.by_number(session, number)).status


async def books_problems(shop: Shop) -> list[str]:
    """What `kaquan ledger check` would name: the ledger against payments' own records."""
    async with shop.rt.db.read() as session:
        paid, done = await refunds.books_records(session)
        return (await ledger.check(session)).problems + await accounting.check_books(session, paid, done)


async def payment(shop: Shop, token: str) -> Payment:
    async with shop.rt.db.read() as session:
        return await payments.by_token(session, token)


async def test_every_method_opens_a_trade_the_buyer_can_pay_and_the_order_is_delivered_once(shop: Shop) -> None:
    for method in shop.simulation.gateway.methods:
        number, token = await an_unpaid_order(shop)
        action = (await chosen(shop, token, method)).action
        assert action.url or action.qr or action.fields, method

        sent = await shop.simulation.provider.pay(token)

        assert sent is not None and 200 <= sent.status_code < 300, (method, sent)
        assert await order_status(shop, number) == "delivered"
        paid = await payment(shop, token)
        assert (paid.status, paid.method) == ("succeeded", method)
        assert paid.gateway_txn_id
    assert await books_problems(shop) == []


async def test_choosing_the_same_method_again_shows_the_same_trade(shop: Shop) -> None:
    _, token = await an_unpaid_order(shop)
    first = await chosen(shop, token)
    again = await chosen(shop, token)
    assert again.action == first.action
    assert again.payment.token == token


async def test_a_duplicate_notification_changes_nothing(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop)
    await chosen(shop, token)
    sent = await shop.simulation.provider.pay(token)
    assert sent is not None

    again = await shop.simulation.provider.resend(sent)

    assert 200 <= again.status_code < 300
    assert await order_status(shop, number) == "delivered"
    async with shop.rt.db.read() as session:
        outcomes = list((await session.execute(select(PaymentCallback.outcome).order_by(PaymentCallback.id))).scalars())
    assert outcomes == ["delivered", "duplicate"]


async def test_a_lost_notification_is_found_by_the_workers_query(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop)
    await chosen(shop, token)
    assert await shop.simulation.provider.pay(token, notify=False) is None
    assert await sweeps.check_pending(shop.rt.db) == 0  # too early: the provider may still notify

    clock.travel(sweeps.QUIET_FOR.total_seconds() + 1)
    assert await sweeps.check_pending(shop.rt.db) == 1

    assert await order_status(shop, number) == "delivered"
    async with shop.rt.db.read() as session:
        outcomes = list((await session.execute(select(PaymentCallback.outcome))).scalars())
    assert outcomes == ["query:delivered"]


async def test_an_unpaid_trade_of_an_expired_order_is_closed_at_the_provider(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop)
    await chosen(shop, token)
    clock.travel(shop.rt.settings.hold_minutes * 60 + 1)
    await shop.rt.db.run(lambda session: orders.expire_due(shop.rt.db, session))

    await sweeps.check_pending(shop.rt.db)

    assert (await payment(shop, token)).status == "closed"
    assert await order_status(shop, number) == "expired"


async def refund(shop: Shop, number: str, amount_minor: int | None = None) -> PaymentRefund:
    async with shop.rt.db.transaction() as session:
        asked = await refunds.request_for_order(
            shop.rt.db,
            session,
            number,
            amount_minor=amount_minor,
            reason="客户申请退款",
            actor="finance",
            may_approve=True,
        )
        refund_no = asked.refund_no
    await run_once(shop.rt)
    async with shop.rt.db.read() as session:
        return (await session.execute(select(PaymentRefund).where(PaymentRefund.refund_no == refund_no))).scalar_one()


async def settled(shop: Shop, done: PaymentRefund) -> str:
    """A refund's final state, asking the provider if it answered "processing" (as WeChat does)."""
    if done.status == "processing":
        clock.travel(sweeps.REFUND_QUIET_FOR.total_seconds() + 1)
        await sweeps.check_refunds(shop.rt.db)
        async with shop.rt.db.read() as session:
            return (await session.get(PaymentRefund, done.id)).status  # type: ignore[union-attr]
    return done.status


async def test_a_full_refund_goes_back_through_the_provider_once_and_voids_the_codes(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop)
    await chosen(shop, token)
    await shop.simulation.provider.pay(token)

    done = await refund(shop, number)

    assert await settled(shop, done) == "succeeded"
    paid = await payment(shop, token)
    assert (paid.status, paid.refunded_minor) == ("refunded", paid.amount_minor)
    # the provider's fee on 19.90: Stripe's 2.9 % + 0.30, which it keeps on a refund; 0.6 %, given back in full
    async with shop.rt.db.read() as session:
        fee_back = (await refunds.by_refund_no(session, done.refund_no)).fee_back_minor
    assert (paid.fee_minor, fee_back) == ((88, 0) if shop.name == "stripe" else (12, 12))
    assert await order_status(shop, number) == "refunded"
    await run_once(shop.rt)  # a retried event or a late notification must not refund twice
    assert (await payment(shop, token)).refunded_minor == paid.amount_minor
    await shop.simulation.provider.drain()
    assert await books_problems(shop) == []


async def test_a_partial_refund_leaves_the_order_delivered_and_the_rest_refundable(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop, price_minor=1990)
    await chosen(shop, token)
    await shop.simulation.provider.pay(token)

    done = await refund(shop, number, amount_minor=500)

    assert await settled(shop, done) == "succeeded"
    paid = await payment(shop, token)
    assert (paid.status, paid.refunded_minor) == ("succeeded", 500)
    assert await order_status(shop, number) == "delivered"
    async with shop.rt.db.read() as session:
        assert await refunds.remaining(session, paid) == 1490
    rest = await refund(shop, number, amount_minor=1490)
    assert await settled(shop, rest) == "succeeded"
    assert (await payment(shop, token)).status == "refunded"
    await shop.simulation.provider.drain()
    assert await books_problems(shop) == []


async def test_a_payment_the_provider_took_for_an_order_that_expired_and_sold_out_goes_back(shop: Shop) -> None:
    number, token = await an_unpaid_order(shop)
    await chosen(shop, token)
    await shop.simulation.provider.pay(token, notify=False)  # paid in time; the provider's word is lost
    clock.travel(shop.rt.settings.hold_minutes * 60 + 1)
    await shop.rt.db.run(lambda session: orders.expire_due(shop.rt.db, session))
    async with shop.rt.db.read() as session:
        sku_id = (await orders.by_number(session, number)).sku_id
    await sell_out(shop, sku_id)

    await sweeps.check_pending(shop.rt.db)
    await run_once(shop.rt)

    async with shop.rt.db.read() as session:
        [done] = (await session.execute(select(PaymentRefund))).scalars()
    assert done.requested_by == "system"
    assert await settled(shop, done) == "succeeded"
    assert await order_status(shop, number) == "refunded"
    assert await books_problems(shop) == []


async def sell_out(shop: Shop, sku_id: int) -> None:
    """Another buyer takes every code left of the SKU."""
    left = (await stock_of(shop.rt, GivenSku(id=sku_id, code=""))).available
    async with shop.rt.db.transaction() as session:
        placed = await orders.place(
            shop.rt.db,
            session,
            shop.rt.order_keys,
            orders.OrderRequest(sku=sku_id, quantity=left, idempotency_key="all", client_token="d" * 22),
            max_per_order=shop.rt.settings.max_per_order,
            hold_minutes=60,
        )
        assert placed.order.quantity == left
