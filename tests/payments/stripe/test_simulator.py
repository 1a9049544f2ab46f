"""The Stripe simulator, seen from outside as Stripe: its API's refusals, idempotency, pay page, webhooks and export."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import stripe
from tests.support.notifications import read
from tests.support.stripe_world import SECRET_KEY, StripeWorld, payment, refund, stripe_world

from kaquan.payments.stripe import protocol


@pytest.fixture
def world() -> StripeWorld:
    return stripe_world()


@pytest.fixture
async def api(world: StripeWorld) -> AsyncIterator[httpx.AsyncClient]:
    """Stripe's API as a merchant reaches it with its secret key."""
    transport = httpx.ASGITransport(world.simulator.app)
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    async with httpx.AsyncClient(base_url="http://stripe.test", transport=transport, headers=headers) as client:
        yield client


def session_form(world: StripeWorld, **overrides: object) -> str:
    params = protocol.checkout_session_params(
        token="tok",
        order_number="O-1",
        subject="点卡",
        amount_minor=1990,
        currency="USD",
        expires_at=world.stamp() + 3600,
        return_url="http://shop.test/orders/O-1",
    )
    return protocol.encode_form({**params, **overrides})


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_a_request_without_the_secret_key_or_with_another_is_refused_with_401(
    world: StripeWorld, api: httpx.AsyncClient
) -> None:
    for authorization in ("", "Bearer sk_test_someone_else", f"Basic {SECRET_KEY}"):
        answer = await api.get("/v1/checkout/sessions", headers={"Authorization": authorization})
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get("/v1/checkout/sessions")).status_code == 200


async def test_an_expiry_outside_30_minutes_to_24_hours_is_refused(world: StripeWorld, api: httpx.AsyncClient) -> None:
    for seconds in (1799, 86_401):
        form = session_form(world, expires_at=world.stamp() + seconds)
        answer = await api.post("/v1/checkout/sessions", content=form, headers=FORM)
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "expires_at"
    assert world.simulator.sessions == {}


async def test_the_same_idempotency_key_replays_the_first_answer_and_with_other_parameters_is_an_error(
    world: StripeWorld, api: httpx.AsyncClient
) -> None:
    key = {**FORM, "Idempotency-Key": "k-1"}
    first = await api.post("/v1/checkout/sessions", content=session_form(world), headers=key)
    again = await api.post("/v1/checkout/sessions", content=session_form(world), headers=key)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(world.simulator.sessions) == 1
    other = await api.post("/v1/checkout/sessions", content=session_form(world, client_reference_id="x"), headers=key)
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


async def test_stripe_forgets_an_idempotency_key_after_24_hours(world: StripeWorld, api: httpx.AsyncClient) -> None:
    """Why the adapter looks a refund up by its number before creating it: the key alone is not forever."""
    await world.gateway.create(payment(at=world.clock.now()))
    await world.simulator.pay("pay_tok_1")
    (intent,) = world.simulator.intents
    refund = {**FORM, "Idempotency-Key": "R-1"}
    body = protocol.encode_form({"payment_intent": intent, "amount": 100})
    assert (await api.post("/v1/refunds", content=body, headers=refund)).status_code == 200
    assert (await api.post("/v1/refunds", content=body, headers=refund)).status_code == 200
    assert len(world.simulator.refunds) == 1
    world.clock.advance(hours=25)
    assert (await api.post("/v1/refunds", content=body, headers=refund)).status_code == 200
    assert len(world.simulator.refunds) == 2


async def test_the_checkout_page_shows_the_amount_in_chinese_and_paying_returns_the_buyer_to_the_shop(
    world: StripeWorld,
) -> None:
    action = await world.gateway.create(payment(at=world.clock.now()))
    assert action.url is not None
    page_path = action.url.removeprefix("http://shop.test/sim/stripe")
    async with httpx.AsyncClient(
        base_url="http://shop.test", transport=httpx.ASGITransport(world.simulator.app)
    ) as buyer:
        page = await buyer.get(page_path)
        assert page.status_code == 200
        assert '<html lang="zh-CN">' in page.text
        assert "确认付款 US$19.90" in page.text
        assert "腾讯视频VIP月卡 x1" in page.text
        assert "<link" not in page.text and "src=" not in page.text  # no external assets
        paid = await buyer.post(page_path)
        assert (paid.status_code, paid.headers["location"]) == (303, "http://shop.test/orders/O-pay_tok_1")
        assert (await buyer.get(page_path)).status_code == 410
    assert (await world.gateway.query("pay_tok_1")).status == "paid"
    assert len(world.webhooks) == 1


async def test_a_yuan_payment_shows_the_yuan_sign(world: StripeWorld) -> None:
    action = await world.gateway.create(payment(at=world.clock.now(), currency="CNY"))
    assert action.url is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(world.simulator.app)) as buyer:
        page = await buyer.get(action.url.replace("http://shop.test/sim/stripe", "http://sim"))
    assert "确认付款 ¥19.90" in page.text


async def test_a_lost_notification_is_not_posted_and_a_resend_posts_the_same_bytes_again(world: StripeWorld) -> None:
    await world.gateway.create(payment("lost", at=world.clock.now()))
    await world.gateway.create(payment("kept", at=world.clock.now()))
    assert await world.simulator.pay("lost", notify=False) is None
    sent = await world.simulator.pay("kept")
    assert sent is not None
    again = await world.simulator.resend(sent)
    assert (again.body, again.headers) == (sent.body, sent.headers)
    assert world.simulator.sent() == [sent, again]
    assert [request.content for request in world.webhooks] == [sent.body, sent.body]


async def test_webhooks_are_signed_so_stripes_library_accepts_them(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    sent = await world.simulator.pay("pay_tok_1")
    assert sent is not None
    header = sent.headers["stripe-signature"]
    assert header.startswith(f"t={world.stamp()},v1=")
    assert stripe.WebhookSignature.verify_header(sent.body, header, world.simulator.webhook_secret, tolerance=None)


async def test_a_webhook_kaquan_refuses_is_recorded_with_its_answer() -> None:
    world = stripe_world()

    def refusing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_signature"})

    world.simulator.notify_transport = httpx.MockTransport(refusing)
    await world.gateway.create(payment(at=world.clock.now()))
    sent = await world.simulator.pay("pay_tok_1")
    assert sent is not None
    assert (sent.status_code, sent.answer) == (400, b'{"error":"invalid_signature"}')


async def test_sessions_past_their_expiry_are_swept_with_their_webhooks(world: StripeWorld) -> None:
    await world.gateway.create(payment("a", at=world.clock.now(), hold=timedelta(hours=1)))
    await world.gateway.create(payment("b", at=world.clock.now(), hold=timedelta(hours=3)))
    world.clock.advance(hours=2)
    assert len(await world.simulator.expire_due()) == 1
    (sent,) = await world.webhooks_of("checkout.session.expired")
    assert read(world.gateway, sent.headers, sent.body).payment_token == "a"


async def test_the_bill_lists_charges_with_stripes_fee_and_refunds_negative(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now(), amount_minor=10_000))
    await world.simulator.pay("pay_tok_1")
    (intent,) = world.simulator.intents
    await world.gateway.refund(refund("R-1", 2500, txn_id=intent, total=10_000))
    rows = [line.split(",") for line in world.simulator.bill(world.clock.now().date()).decode().splitlines()]
    assert rows[0][:4] == ["id", "Type", "Source", "Amount"]
    assert [row[1:7] for row in rows[1:]] == [
        ["charge", rows[1][2], "100.00", "3.20", "96.80", "usd"],  # 2.9 % + 30 cents
        ["refund", rows[2][2], "-25.00", "0.00", "-25.00", "usd"],
    ]
    assert rows[1][2].startswith("ch_") and rows[2][2].startswith("re_")
