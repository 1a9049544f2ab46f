"""kaquan's pay page, the method choice API, and provider notifications answered in each provider's own form."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.builders import given_sku_with_codes, place_order
from tests.support.http import BROWSER

from kaquan.kit import clock
from kaquan.payments import registry
from kaquan.payments.alipay.simulator import AlipaySimulator
from kaquan.payments.models import Payment, PaymentCallback
from kaquan.payments.plugins import GatewaySetup, Simulation, load_plugins
from kaquan.payments.stripe import protocol as stripe_protocol
from kaquan.payments.stripe.simulator import StripeSimulator
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

PUBLIC_URL = "http://shop.test"


async def simulated(rt: Runtime, tmp_path: Path, name: str) -> AsyncIterator[tuple[httpx.AsyncClient, Simulation]]:
    """A shop taking `name` (simulated) and the dev gateway, and a buyer's client for it."""
    app = create_app(rt=rt)
    plugin = next(p for p in load_plugins() if p.name == name)
    simulation = plugin.simulated(
        GatewaySetup(
            settings=rt.settings,
            public_url=PUBLIC_URL,
            state_dir=tmp_path / "gateways",
            notify_transport=httpx.ASGITransport(app=app),
        )
    )
    registry.configure([simulation.gateway, rt.dev_gateway], public_url=PUBLIC_URL)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client:
        yield client, simulation
    await simulation.provider.drain()
    registry.configure([rt.dev_gateway])


@pytest.fixture
async def alipay(rt: Runtime, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Simulation]]:
    async for shop in simulated(rt, tmp_path, "alipay"):
        yield shop


@pytest.fixture
async def stripe(rt: Runtime, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Simulation]]:
    async for shop in simulated(rt, tmp_path, "stripe"):
        yield shop


async def payment_status(rt: Runtime, token: str) -> str:
    async with rt.db.read() as session:
        return (await session.execute(select(Payment.status).where(Payment.token == token))).scalar_one()


async def logged_callbacks(rt: Runtime) -> list[tuple[bool, str, str | None]]:
    async with rt.db.read() as session:
        rows = await session.execute(
            select(PaymentCallback.accepted, PaymentCallback.outcome, PaymentCallback.payment_token).order_by(
                PaymentCallback.id
            )
        )
        return [(row.accepted, row.outcome, row.payment_token) for row in rows]


async def test_the_pay_page_offers_every_configured_method(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, _ = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))

    page = await client.get(f"/pay/{token}", headers=BROWSER)

    assert page.status_code == 200
    for key in ("alipay:page", "alipay:wap", "alipay:qr", "dev:page"):
        assert f'value="{key}"' in page.text
    assert "支付宝 · 扫码" in page.text
    methods = (await client.get("/api/payments/methods")).json()
    assert [m["key"] for m in methods] == ["alipay:page", "alipay:wap", "alipay:qr", "dev:page"]


async def test_choosing_the_qr_method_shows_the_providers_code_as_inline_svg(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, _ = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))

    chosen = await client.post(f"/pay/{token}", data={"method": "alipay:qr"}, headers=BROWSER)
    page = await client.get(chosen.headers["location"], headers=BROWSER)

    assert chosen.status_code == 303
    assert '<div class="qr" id="qr"><svg' in page.text
    assert "<img" not in page.text  # drawn here, not fetched from a QR image service


async def test_the_method_api_returns_the_action_and_the_same_trade_when_asked_again(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, _ = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))

    first = await client.post(f"/api/payments/{token}/method", json={"method": "alipay:qr"})
    again = await client.post(f"/api/payments/{token}/method", json={"method": "alipay:qr"})

    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["payment"], body["method"], body["action"]["kind"]) == (token, "alipay:qr", "qr")
    assert body["action"]["qr_svg"].startswith("<svg")
    assert again.json()["action"] == body["action"]


@pytest.mark.parametrize(
    ("choice", "status", "code"),
    [
        ({"method": "paypal:express"}, 400, "payment_method_not_offered"),
        ({"method": "alipay:face"}, 400, "payment_method_not_offered"),
        ({"method": "alipay:qr", "extra": 1}, 422, None),
        ({}, 422, None),
    ],
)
async def test_a_method_the_shop_does_not_offer_is_refused_and_opens_nothing(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation], choice: dict[str, object], status: int, code: str | None
) -> None:
    client, _ = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))

    refused = await client.post(f"/api/payments/{token}/method", json=choice)

    assert refused.status_code == status
    if code:
        assert refused.json()["error"]["code"] == code
    page = await client.get(f"/pay/{token}", headers=BROWSER)
    assert 'id="qr"' not in page.text


async def test_a_paid_payment_cannot_be_opened_again(rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]) -> None:
    client, simulation = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))
    await client.post(f"/api/payments/{token}/method", json={"method": "alipay:qr"})
    await simulation.provider.pay(token)

    again = await client.post(f"/api/payments/{token}/method", json={"method": "alipay:page"})

    assert again.status_code == 409


async def test_alipay_hears_success_for_a_taken_notification_and_fail_for_a_forged_one(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, simulation = alipay
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))
    await client.post(f"/api/payments/{token}/method", json={"method": "alipay:qr"})
    sent = await simulation.provider.pay(token)
    assert sent is not None
    assert (sent.status_code, sent.answer) == (200, b"success")

    forged = sent.body.replace(b"total_amount=", b"total_amount=1")
    refused = await client.post("/payments/alipay/notify", content=forged, headers=sent.headers)

    assert (refused.status_code, refused.text) == (400, "fail")
    async with rt.db.read() as session:
        logged = list((await session.execute(select(PaymentCallback.accepted, PaymentCallback.outcome))).all())
    assert logged == [(True, "delivered"), (False, "invalid_signature")]


async def test_the_qr_page_refreshes_itself_and_goes_to_the_order_once_the_phone_paid(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, simulation = alipay
    number, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))
    await client.post(f"/pay/{token}", data={"method": "alipay:qr"}, headers=BROWSER)
    waiting = await client.get(f"/pay/{token}", headers=BROWSER)
    assert '<meta http-equiv="refresh" content="3">' in waiting.text

    await simulation.provider.pay(token)
    paid = await client.get(f"/pay/{token}", headers=BROWSER)

    assert (paid.status_code, paid.headers["location"]) == (303, f"/orders/{number}")


async def test_alipay_hears_success_for_a_wait_buyer_pay_which_changes_nothing_and_fail_for_a_forged_one(
    rt: Runtime, alipay: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, simulation = alipay
    assert isinstance(simulation.provider, AlipaySimulator)
    _, _, token = await place_order(rt, await given_sku_with_codes(rt, 2))
    await client.post(f"/api/payments/{token}/method", json={"method": "alipay:qr"})

    sent = await simulation.provider.notify_waiting(token)
    forged = await client.post(
        "/payments/alipay/notify", content=sent.body.replace(b"WAIT_BUYER_PAY", b"TRADE_SUCCESS"), headers=sent.headers
    )

    assert (sent.status_code, sent.answer) == (200, b"success")
    assert (forged.status_code, forged.text) == (400, "fail")
    assert await logged_callbacks(rt) == [(True, "ignored:WAIT_BUYER_PAY", token), (False, "invalid_signature", None)]
    assert await payment_status(rt, token) == "pending"
    await simulation.provider.pay(token)
    assert await payment_status(rt, token) == "succeeded"


async def test_stripe_hears_received_for_an_event_kaquan_does_not_read_and_an_error_for_a_forged_one(
    rt: Runtime, stripe: tuple[httpx.AsyncClient, Simulation]
) -> None:
    client, simulation = stripe
    assert isinstance(simulation.provider, StripeSimulator)
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "customer.created",
            "livemode": False,
            "data": {"object": {"object": "customer", "id": "cus_1"}},
        }
    ).encode()
    at = int(clock.now().timestamp())

    genuine = await client.post(
        "/payments/stripe/notify",
        content=body,
        headers={"Stripe-Signature": stripe_protocol.signature_header([simulation.provider.webhook_secret], body, at)},
    )
    forged = await client.post(
        "/payments/stripe/notify",
        content=body,
        headers={"Stripe-Signature": stripe_protocol.signature_header(["whsec_forged"], body, at)},
    )

    assert (genuine.status_code, genuine.json()) == (200, {"received": True})
    assert (forged.status_code, forged.json()) == (400, {"error": "invalid_signature"})
    assert await logged_callbacks(rt) == [(True, "ignored:customer.created", None), (False, "invalid_signature", None)]
