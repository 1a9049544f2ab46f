"""The dev gateway marks any order paid for whoever holds its pay link: it exists only when switched on.

A server started without `KAQUAN_DEV_GATEWAY=1` refuses its pay page and its
notifications, offers no pay button, and (having no other gateway) takes no
orders it could not be paid for: `payment_unavailable`, never a 500.
"""

import logging
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import GivenSku, given_sku_with_codes, place_order, stock_of
from tests.support.http import BROWSER, the_error

from kaquan import runtime as runtime_module
from kaquan.flashsale.gate import MemoryGate
from kaquan.flashsale.purchase import FlashSale
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.orders.models import Order
from kaquan.payments.dev import DevGateway
from kaquan.payments.errors import PaymentUnavailable
from kaquan.payments.models import Payment, PaymentCallback
from kaquan.runtime import Runtime
from kaquan.web.app import DEV_GATEWAY_WARNING, NO_GATEWAY_WARNING, announce_payment, create_app


@pytest.fixture
async def production(db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    """The same database served as production serves it: the default, no dev gateway."""
    runtime = await runtime_module.start(settings.model_copy(update={"dev_gateway": False}), db=db)
    yield runtime
    await runtime.agent_orders.close()
    await runtime.flash.close()


@pytest.fixture
async def production_client(production: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rt=production))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


async def a_pay_link_from_a_trial(db: Database, settings: Settings) -> tuple[GivenSku, str, str]:
    """An unpaid order whose dev-gateway pay link leaked: (sku, order number, payment token)."""
    trial = await runtime_module.start(settings, db=db)
    try:
        sku = await given_sku_with_codes(trial, 3)
        number, _, token = await place_order(trial, sku)
    finally:
        await trial.agent_orders.close()
        await trial.flash.close()
    return sku, number, token


async def orders_and_payments(rt: Runtime) -> tuple[int, int]:
    async with rt.db.read() as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        payments = (await session.execute(select(func.count()).select_from(Payment))).scalar_one()
    return orders, payments


def test_a_default_settings_has_the_dev_gateway_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAQUAN_DEV_GATEWAY", raising=False)
    assert Settings().dev_gateway is False
    monkeypatch.setenv("KAQUAN_DEV_GATEWAY", "1")
    assert Settings().dev_gateway is True


async def test_without_the_dev_gateway_its_pay_page_and_pay_button_are_refused_and_nothing_is_paid(
    db: Database, settings: Settings
) -> None:
    sku, number, token = await a_pay_link_from_a_trial(db, settings)
    production = await runtime_module.start(settings.model_copy(update={"dev_gateway": False}), db=db)
    transport = httpx.ASGITransport(app=create_app(rt=production))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            page = await client.get(f"/pay/dev/{token}")
            paid = await client.post(f"/pay/dev/{token}")
            page_html = await client.get(f"/pay/dev/{token}", headers=BROWSER)

        the_error(page, 404, "dev_gateway_disabled")
        the_error(paid, 404, "dev_gateway_disabled")
        assert page_html.status_code == 404
        assert "confirm-pay" not in page_html.text
        async with production.db.read() as session:
            order = (await session.execute(select(Order).where(Order.number == number))).scalar_one()
            payment = (await session.execute(select(Payment).where(Payment.token == token))).scalar_one()
        assert (order.status, payment.status) == ("pending_payment", "pending")
        stock = await stock_of(production, sku)
        assert (stock.reserved, stock.sold) == (1, 0)
    finally:
        await production.agent_orders.close()
        await production.flash.close()


async def test_without_the_dev_gateway_its_signed_notifications_are_refused(db: Database, settings: Settings) -> None:
    _, number, token = await a_pay_link_from_a_trial(db, settings)
    production = await runtime_module.start(settings.model_copy(update={"dev_gateway": False}), db=db)
    transport = httpx.ASGITransport(app=create_app(rt=production))
    forger = DevGateway(secrets.token_bytes(32))
    headers, body = forger.notification(token, 100, "CNY", txn_id="forged")
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            refused = await client.post("/payments/dev/notify", content=body, headers=headers)

        the_error(refused, 404, "payment_not_found")
        async with production.db.read() as session:
            order = (await session.execute(select(Order).where(Order.number == number))).scalar_one()
            callbacks = (await session.execute(select(func.count()).select_from(PaymentCallback))).scalar_one()
        assert order.status == "pending_payment"
        assert callbacks == 0
    finally:
        await production.agent_orders.close()
        await production.flash.close()


async def test_without_any_gateway_the_shop_says_payment_is_unavailable_and_takes_no_order(
    production: Runtime, production_client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(production, 3)

    index = await production_client.get("/", headers=BROWSER)
    form = await production_client.post(
        "/orders",
        data={"sku": sku.code, "quantity": "1", "idempotency_key": "k-1"},
        headers=BROWSER,
    )
    api = await production_client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1},
        headers={"Idempotency-Key": "k-2", "X-Client-Token": "a-client-token-of-its-own"},
    )

    assert index.status_code == 200
    assert 'id="payment-unavailable"' in index.text
    assert 'action="/orders"' not in index.text
    assert form.status_code == 503
    assert 'data-code="payment_unavailable"' in form.text
    the_error(api, 503, "payment_unavailable")
    assert await orders_and_payments(production) == (0, 0)
    stock = await stock_of(production, sku)
    assert (stock.available, stock.reserved) == (3, 0)


async def test_an_order_left_unpaid_when_the_gateway_went_away_offers_no_pay_button(
    db: Database, settings: Settings
) -> None:
    _, number, _ = await a_pay_link_from_a_trial(db, settings)
    production = await runtime_module.start(settings.model_copy(update={"dev_gateway": False}), db=db)
    transport = httpx.ASGITransport(app=create_app(rt=production))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            client.cookies.set(f"kqo_{number}", production.order_keys.lookup_secret(number), path=f"/orders/{number}")
            page = await client.get(f"/orders/{number}", headers=BROWSER)
    finally:
        await production.agent_orders.close()
        await production.flash.close()

    assert page.status_code == 200
    assert 'id="pay"' not in page.text
    assert 'id="payment-unavailable"' in page.text


async def test_without_any_gateway_a_flash_sale_refuses_purchases_before_admitting_them(production: Runtime) -> None:
    flash = FlashSale(
        production.db,
        production.settings,
        MemoryGate(),
        keyring=production.keyring,
        order_keys=production.order_keys,
        gateway=production.gateway,
        shared_gate=False,
    )
    try:
        with pytest.raises(PaymentUnavailable):
            await flash.purchase(1, "ann@example.com", 1, "r-1")
    finally:
        await flash.close()
    assert await orders_and_payments(production) == (0, 0)


def test_the_server_announces_the_dev_gateway_loudly_and_a_missing_gateway_too(
    rt: Runtime, production: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kaquan.web.app"):
        announce_payment(rt)
        announce_payment(production)

    dev, missing = (record.getMessage() for record in caplog.records)
    assert dev == DEV_GATEWAY_WARNING
    assert "Anyone holding an order's pay link can mark it paid" in dev
    assert len(dev.splitlines()) >= 4
    assert missing == NO_GATEWAY_WARNING
