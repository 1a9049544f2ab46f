"""The Stripe adapter against the simulator: checkout, webhooks, queries, closing, refunds, failures, the export."""

import json
from datetime import timedelta

import httpx
import pytest
from tests.support.notifications import read
from tests.support.stripe_world import (
    API_BASE,
    SECRET_KEY,
    TOKEN,
    StripeWorld,
    completed_session,
    event,
    payment,
    refund,
    signed,
    stripe_world,
)

from kaquan.payments.errors import (
    GatewayFailed,
    GatewayRefused,
    InvalidSignature,
    MalformedCallback,
    MethodNotOffered,
    NotificationMismatch,
    StaleCallback,
)
from kaquan.payments.gateway import Chargeback, Ignored, TradeState
from kaquan.payments.stripe import protocol
from kaquan.payments.stripe.gateway import StripeConfig, StripeGateway
from kaquan.payments.stripe.protocol import CurrencyNotSupported
from kaquan.payments.stripe.simulator import TradeNotPayable


@pytest.fixture
def world() -> StripeWorld:
    return stripe_world()


async def paid(world: StripeWorld, payment_token: str = TOKEN, *, amount_minor: int = 1990) -> str:
    """Open a checkout for the token, have the buyer pay, and return the PaymentIntent id Stripe reports."""
    await world.gateway.create(payment(payment_token, at=world.clock.now(), amount_minor=amount_minor))
    sent = await world.simulator.pay(payment_token)
    assert sent is not None
    txn_id = read(world.gateway, sent.headers, sent.body).txn_id
    assert txn_id is not None
    return txn_id


# --- paying -------------------------------------------------------------------------------------------------


async def test_a_payment_opens_a_checkout_session_and_sends_the_buyer_to_its_page(world: StripeWorld) -> None:
    action = await world.gateway.create(payment(at=world.clock.now()))
    assert action.kind == "redirect"
    assert action.provider_ref is not None and action.provider_ref.startswith("cs_test_")
    assert action.url == f"http://shop.test/sim/stripe/c/pay/{action.provider_ref}"
    session = world.simulator.sessions[action.provider_ref]
    assert (session["amount_total"], session["currency"], session["client_reference_id"]) == (1990, "usd", "pay_tok_1")


async def test_the_request_the_library_sends_is_the_session_in_bracket_notation_with_the_secret_key() -> None:
    sent: list[httpx.Request] = []

    def stripe_api(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"id": "cs_test_x", "object": "checkout.session", "url": "https://pay/x"})

    world = stripe_world()
    http = httpx.AsyncClient(base_url=API_BASE, transport=httpx.MockTransport(stripe_api))
    gateway = StripeGateway(
        StripeConfig(secret_key=SECRET_KEY, webhook_secret="whsec_x", api_base=API_BASE), http, now=world.clock.now
    )
    await gateway.create(payment(at=world.clock.now(), hold=timedelta(hours=2)))
    (request,) = sent
    assert (request.method, request.url.path) == ("POST", "/v1/checkout/sessions")
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = protocol.decode_form(request.content.decode())
    assert form["line_items"][0]["price_data"] == {
        "currency": "usd",
        "unit_amount": "1990",
        "product_data": {"name": "腾讯视频VIP月卡 x1"},
    }
    assert form["client_reference_id"] == form["metadata"]["payment_token"] == "pay_tok_1"
    assert form["payment_intent_data"]["metadata"]["payment_token"] == "pay_tok_1"
    assert form["expires_at"] == str(int((world.clock.now() + timedelta(hours=2)).timestamp()))


async def test_a_hold_shorter_than_30_minutes_gets_a_session_stripe_accepts(world: StripeWorld) -> None:
    action = await world.gateway.create(payment(at=world.clock.now(), hold=timedelta(minutes=15)))
    assert action.provider_ref is not None
    expires_at = world.simulator.sessions[action.provider_ref]["expires_at"]
    assert expires_at == int((world.clock.now() + timedelta(minutes=31)).timestamp())


async def test_asking_twice_for_the_same_payment_gives_the_same_open_session(world: StripeWorld) -> None:
    first = await world.gateway.create(payment(at=world.clock.now()))
    again = await world.gateway.create(payment(at=world.clock.now()))
    assert again == first
    assert len(world.simulator.sessions) == 1


async def test_a_method_stripe_does_not_offer_and_a_currency_kaquan_cannot_book_are_refused(world: StripeWorld) -> None:
    with pytest.raises(MethodNotOffered):
        await world.gateway.create(payment(at=world.clock.now(), method="qr"))
    with pytest.raises(CurrencyNotSupported):
        await world.gateway.create(payment(at=world.clock.now(), currency="GBP"))
    assert world.simulator.sessions == {}


async def test_the_buyer_paying_is_a_verified_paid_notification_with_stripes_amount_and_payment_intent(
    world: StripeWorld,
) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    sent = await world.simulator.pay("pay_tok_1")
    assert sent is not None and sent.status_code == 200
    assert world.webhooks[0].url == "http://shop.test/payments/stripe/notify"
    notification = read(world.gateway, sent.headers, sent.body)
    (intent,) = world.simulator.intents
    assert notification.kind == "paid"
    assert (notification.payment_token, notification.amount_minor, notification.currency) == ("pay_tok_1", 1990, "USD")
    assert notification.txn_id == intent
    assert notification.payer == "buyer@example.com"


async def test_a_yen_payment_is_reported_in_whole_yen(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now(), amount_minor=1200, currency="JPY"))
    sent = await world.simulator.pay("pay_tok_1")
    assert sent is not None
    notification = read(world.gateway, sent.headers, sent.body)
    assert (notification.amount_minor, notification.currency) == (1200, "JPY")


# --- asking Stripe -----------------------------------------------------------------------------------------


async def test_a_query_says_pending_before_the_buyer_pays_and_paid_after(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    assert (await world.gateway.query("pay_tok_1")).status == "pending"
    await world.simulator.pay("pay_tok_1", notify=False)  # the notification is lost
    assert world.webhooks == []
    (intent,) = world.simulator.intents
    assert await world.gateway.query("pay_tok_1") == TradeState(
        status="paid", amount_minor=1990, currency="USD", txn_id=intent, payer="buyer@example.com"
    )


async def test_a_query_for_a_token_stripe_never_saw_is_not_found(world: StripeWorld) -> None:
    assert (await world.gateway.query("never")).status == "not_found"


async def test_after_a_restart_the_query_finds_the_session_from_the_token_alone(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    assert (await world.gateway_after_restart().query("pay_tok_1")).status == "pending"
    await world.simulator.pay("pay_tok_1", notify=False)
    assert (await world.gateway_after_restart().query("pay_tok_1")).status == "paid"


async def test_a_paid_trade_older_than_a_day_is_found_through_its_payment_intents_metadata(world: StripeWorld) -> None:
    await paid(world)
    world.clock.advance(days=3)
    state = await world.gateway_after_restart().query("pay_tok_1")
    assert (state.status, state.amount_minor, state.txn_id) == ("paid", 1990, next(iter(world.simulator.intents)))


async def test_a_restarted_process_finds_its_session_among_more_than_one_page_of_them(world: StripeWorld) -> None:
    for number in range(130):
        await world.gateway.create(payment(f"tok_{number}", at=world.clock.now()))
    await world.simulator.pay("tok_3", notify=False)
    assert (await world.gateway_after_restart().query("tok_3")).status == "paid"
    assert (await world.gateway_after_restart().query("tok_129")).status == "pending"


# --- closing -----------------------------------------------------------------------------------------------


async def test_closing_expires_the_session_so_the_buyer_can_no_longer_pay(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    await world.gateway.close("pay_tok_1")
    assert (await world.gateway.query("pay_tok_1")).status == "closed"
    with pytest.raises(TradeNotPayable):
        await world.simulator.pay("pay_tok_1")
    await world.gateway.close("pay_tok_1")  # closing again changes nothing
    await world.gateway.close("never")


async def test_a_closed_session_is_a_verified_closed_notification(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    await world.gateway.close("pay_tok_1")
    (sent,) = await world.webhooks_of("checkout.session.expired")
    notification = read(world.gateway, sent.headers, sent.body)
    assert (notification.kind, notification.payment_token, notification.amount_minor) == ("closed", "pay_tok_1", 1990)


async def test_a_session_past_its_expiry_is_closed_at_stripe(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now(), hold=timedelta(hours=1)))
    world.clock.advance(hours=1)
    assert (await world.gateway.query("pay_tok_1")).status == "closed"
    (sent,) = await world.webhooks_of("checkout.session.expired")
    assert read(world.gateway, sent.headers, sent.body).kind == "closed"


async def test_a_paid_trade_cannot_be_closed(world: StripeWorld) -> None:
    await paid(world)
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.close("pay_tok_1")
    assert refused.value.details["code"] == "checkout_session_complete"


# --- refunds -----------------------------------------------------------------------------------------------


async def test_a_full_refund_succeeds_and_its_webhook_verifies_as_a_refund(world: StripeWorld) -> None:
    txn_id = await paid(world)
    result = await world.gateway.refund(refund("R-1", 1990, txn_id=txn_id))
    assert result.status == "succeeded"
    assert result.provider_ref in world.simulator.refunds
    (sent,) = await world.webhooks_of("refund.created")
    notification = read(world.gateway, sent.headers, sent.body)
    assert notification.kind == "refund"
    assert (notification.refund_no, notification.refund_status) == ("R-1", "succeeded")
    assert (notification.payment_token, notification.amount_minor, notification.currency) == ("pay_tok_1", 1990, "USD")


async def test_partial_refunds_add_up_and_one_beyond_what_remains_is_refused_by_stripe(world: StripeWorld) -> None:
    txn_id = await paid(world)
    await world.gateway.refund(refund("R-1", 500, txn_id=txn_id))
    await world.gateway.refund(refund("R-2", 1000, txn_id=txn_id))
    with pytest.raises(GatewayRefused) as too_much:
        await world.gateway.refund(refund("R-3", 491, txn_id=txn_id))
    assert too_much.value.details["code"] == "amount_too_large"
    await world.gateway.refund(refund("R-4", 490, txn_id=txn_id))
    with pytest.raises(GatewayRefused) as nothing_left:
        await world.gateway.refund(refund("R-5", 1, txn_id=txn_id))
    assert nothing_left.value.details["code"] == "charge_already_refunded"
    assert sorted(r["amount"] for r in world.simulator.refunds.values()) == [490, 500, 1000]


async def test_the_same_refund_number_twice_is_one_refund_at_stripe(world: StripeWorld) -> None:
    txn_id = await paid(world)
    first = await world.gateway.refund(refund("R-1", 700, txn_id=txn_id))
    again = await world.gateway.refund(refund("R-1", 700, txn_id=txn_id))
    assert again == first
    assert len(world.simulator.refunds) == 1


async def test_a_refund_retried_after_stripe_forgot_its_idempotency_key_is_still_one_refund(world: StripeWorld) -> None:
    txn_id = await paid(world)
    first = await world.gateway.refund(refund("R-1", 700, txn_id=txn_id))
    world.clock.advance(hours=25)  # Stripe keeps idempotency keys 24 hours
    again = await world.gateway_after_restart().refund(refund("R-1", 700, txn_id=None))
    assert again == first
    assert len(world.simulator.refunds) == 1


async def test_a_refund_is_queried_by_kaquans_number(world: StripeWorld) -> None:
    txn_id = await paid(world)
    made = await world.gateway.refund(refund("R-1", 700, txn_id=txn_id))
    assert await world.gateway_after_restart().query_refund("pay_tok_1", "R-1") == made
    never_made = await world.gateway.query_refund("pay_tok_1", "R-404")
    assert (never_made.status, never_made.provider_ref) == ("failed", None)


async def test_refunding_an_unpaid_payment_is_refused(world: StripeWorld) -> None:
    await world.gateway.create(payment(at=world.clock.now()))
    with pytest.raises(GatewayRefused):
        await world.gateway.refund(refund("R-1", 100, txn_id=None))


# --- webhooks that must not count ------------------------------------------------------------------------


async def test_a_tampered_or_unsigned_or_foreign_signed_webhook_is_refused(world: StripeWorld) -> None:
    txn_id = await paid(world)
    (sent,) = world.simulator.sent()
    assert txn_id
    with pytest.raises(InvalidSignature):
        world.gateway.verify(sent.headers, sent.body.replace(b'"amount_total": 1990', b'"amount_total": 1'))
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, sent.body)
    headers, body = signed(
        event("checkout.session.completed", completed_session()), at=world.clock.now(), secret="whsec_x"
    )
    with pytest.raises(InvalidSignature):
        world.gateway.verify(headers, body)
    with pytest.raises(InvalidSignature):
        world.gateway.verify(sent.headers, b"\xff\xfe not utf-8")


async def test_a_webhook_signed_more_than_300_seconds_ago_or_ahead_is_stale(world: StripeWorld) -> None:
    await paid(world)
    (sent,) = world.simulator.sent()
    world.clock.advance(seconds=300)
    assert read(world.gateway, sent.headers, sent.body).kind == "paid"
    world.clock.advance(seconds=1)
    with pytest.raises(StaleCallback):
        world.gateway.verify(sent.headers, sent.body)
    headers, body = signed(event("checkout.session.completed", completed_session()), at=world.clock.now())
    world.clock.advance(seconds=-301)
    with pytest.raises(StaleCallback):
        world.gateway.verify(headers, body)


async def test_a_live_mode_event_at_a_test_mode_shop_is_a_mismatch(world: StripeWorld) -> None:
    headers, body = signed(
        event("checkout.session.completed", completed_session(), livemode=True), at=world.clock.now()
    )
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)


async def test_an_event_about_another_stripe_account_is_a_mismatch() -> None:
    world = stripe_world(account_id="acct_ours")
    kind = "checkout.session.completed"
    headers, body = signed(event(kind, completed_session(), account="acct_theirs"), at=world.clock.now())
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)
    headers, body = signed(event(kind, completed_session(), account="acct_ours"), at=world.clock.now())
    assert read(world.gateway, headers, body).kind == "paid"
    without_account = stripe_world()  # a direct account's own events carry no `account`
    headers, body = signed(event(kind, completed_session(), account="acct_connected"), at=without_account.clock.now())
    with pytest.raises(NotificationMismatch):
        without_account.gateway.verify(headers, body)


async def test_a_currency_kaquan_cannot_book_is_a_mismatch(world: StripeWorld) -> None:
    headers, body = signed(event("checkout.session.completed", completed_session(currency="gbp")), at=world.clock.now())
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)


async def test_a_checkout_session_kaquan_did_not_open_is_a_mismatch(world: StripeWorld) -> None:
    foreign = completed_session(client_reference_id=None, metadata={})
    headers, body = signed(event("checkout.session.completed", foreign), at=world.clock.now())
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)
    foreign_refund = {"object": "refund", "id": "re_1", "amount": 5, "currency": "usd", "metadata": {}}
    headers, body = signed(event("refund.updated", foreign_refund), at=world.clock.now())
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"object": "event", "type": "checkout.session.completed"}).encode(),
        json.dumps(event("checkout.session.completed", {"object": "checkout.session"})).encode(),
        json.dumps(event("checkout.session.completed", completed_session(amount_total="19.90"))).encode(),
        json.dumps(event("checkout.session.completed", completed_session(payment_status="unpaid"))).encode(),
        json.dumps(event("checkout.session.completed", completed_session(payment_intent=None))).encode(),
        json.dumps(event("charge.refunded", {"object": "charge", "refunds": {"data": []}})).encode(),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-data",
        "session-without-fields",
        "amount-as-text",
        "completed-unpaid",
        "paid-without-intent",
        "charge-refunded-without-refunds",
    ],
)
async def test_a_correctly_signed_body_kaquan_cannot_read_is_malformed(world: StripeWorld, body: bytes) -> None:
    headers = {"Stripe-Signature": protocol.signature_header([world.simulator.webhook_secret], body, world.stamp())}
    with pytest.raises(MalformedCallback):
        world.gateway.verify(headers, body)


@pytest.mark.parametrize("kind", ["customer.created", "payment_intent.succeeded", "charge.dispute.updated"])
async def test_a_signed_event_of_a_type_kaquan_does_not_read_is_ignored(world: StripeWorld, kind: str) -> None:
    headers, body = signed(event(kind, {"object": kind.split(".")[0], "id": "obj_1"}), at=world.clock.now())

    assert world.gateway.verify(headers, body) == Ignored(kind)


async def test_an_unread_event_type_forged_stale_or_for_another_account_is_refused(world: StripeWorld) -> None:
    customer = event("customer.created", {"object": "customer", "id": "cus_1"})
    headers, body = signed(customer, at=world.clock.now(), secret="whsec_not_ours")
    with pytest.raises(InvalidSignature):
        world.gateway.verify(headers, body)
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, body)
    headers, body = signed(customer, at=world.clock.now() - timedelta(hours=1))
    with pytest.raises(StaleCallback):
        world.gateway.verify(headers, body)
    headers, body = signed({**customer, "account": "acct_someone_else"}, at=world.clock.now())
    with pytest.raises(NotificationMismatch):
        world.gateway.verify(headers, body)


def test_accepted_webhooks_get_received_true_and_refused_ones_their_error_code(world: StripeWorld) -> None:
    accepted = world.gateway.acknowledge(None)
    assert (accepted.status_code, json.loads(accepted.body), accepted.media_type) == (
        200,
        {"received": True},
        "application/json",
    )
    refused = world.gateway.acknowledge("invalid_signature")
    assert (refused.status_code, json.loads(refused.body)) == (400, {"error": "invalid_signature"})


# --- Stripe failing ----------------------------------------------------------------------------------------


async def test_stripe_answering_5xx_is_a_retryable_failure(world: StripeWorld) -> None:
    world.simulator.failing = 503
    with pytest.raises(GatewayFailed):
        await world.gateway.create(payment(at=world.clock.now()))
    world.simulator.failing = None
    txn_id = await paid(world)
    world.simulator.failing = 500
    with pytest.raises(GatewayFailed):
        await world.gateway.refund(refund("R-1", 100, txn_id=txn_id))
    with pytest.raises(GatewayFailed):
        await world.gateway.query("pay_tok_1")
    world.simulator.failing = None
    assert world.simulator.refunds == {}


@pytest.mark.parametrize("failure", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError])
async def test_stripe_timing_out_or_unreachable_is_a_retryable_failure(world: StripeWorld, failure: type) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise failure("simulated", request=request)

    http = httpx.AsyncClient(base_url=API_BASE, transport=httpx.MockTransport(unreachable))
    config = StripeConfig(secret_key=SECRET_KEY, webhook_secret="whsec_x", api_base=API_BASE)
    gateway = StripeGateway(config, http, now=world.clock.now)
    with pytest.raises(GatewayFailed):
        await gateway.create(payment(at=world.clock.now()))
    with pytest.raises(GatewayFailed):
        await gateway.refund(refund("R-1", 100, txn_id="pi_1"))


async def test_a_wrong_secret_key_is_refused_by_stripe_and_not_retried(world: StripeWorld) -> None:
    gateway = world.gateway_after_restart(secret_key="sk_test_wrong")
    with pytest.raises(GatewayRefused) as refused:
        await gateway.create(payment(at=world.clock.now()))
    assert refused.value.details["status"] == 401
    assert world.simulator.sessions == {}


# --- reconciliation ----------------------------------------------------------------------------------------


async def test_the_downloaded_export_is_stripes_csv_of_the_days_balance_transactions(world: StripeWorld) -> None:
    txn_id = await paid(world, "tok_a")
    await paid(world, "tok_b", amount_minor=500)
    await world.gateway.refund(refund("R-1", 300, payment_token="tok_a", txn_id=txn_id))
    day = world.clock.now().date()
    export = await world.gateway.download_bill(day)
    assert export == world.simulator.bill(day)
    lines = export.decode().splitlines()
    assert lines[0].startswith("id,Type,Source,Amount,Fee,Net,Currency,Created (UTC),Available On (UTC),Description")
    assert [line.split(",")[1:7] for line in lines[1:]] == [
        ["charge", lines[1].split(",")[2], "19.90", "0.88", "19.02", "usd"],
        ["charge", lines[2].split(",")[2], "5.00", "0.45", "4.55", "usd"],
        ["refund", lines[3].split(",")[2], "-3.00", "0.00", "-3.00", "usd"],
    ]
    assert [line.split(",")[-1] for line in lines[1:]] == ["tok_a", "tok_b", "tok_a"]
    assert await world.gateway.download_bill(day + timedelta(days=1)) == world.simulator.bill(day + timedelta(days=1))
    assert len(world.simulator.bill(day + timedelta(days=1)).decode().splitlines()) == 1


async def test_a_pending_refund_is_processing_until_stripe_says_how_it_ended(world: StripeWorld) -> None:
    txn_id = await paid(world)
    world.simulator.refunds_pending = True
    made = await world.gateway.refund(refund("R-1", 1990, txn_id=txn_id))
    assert made.status == "processing"
    (created,) = await world.webhooks_of("refund.created")
    assert read(world.gateway, created.headers, created.body).refund_status == "processing"
    assert made.provider_ref is not None
    updated = await world.simulator.settle_refund(made.provider_ref, succeeded=False)
    notification = read(world.gateway, updated.headers, updated.body)
    assert (notification.kind, notification.refund_no, notification.refund_status) == ("refund", "R-1", "failed")
    failed = await world.gateway.query_refund("pay_tok_1", "R-1")
    assert (failed.status, failed.detail) == ("failed", "expired_or_canceled_card")
    world.simulator.refunds_pending = False
    again = await world.gateway.refund(refund("R-2", 1990, txn_id=txn_id))  # the money came back: refundable again
    assert again.status == "succeeded"


def dispute(**fields: object) -> dict[str, object]:
    found = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 1990,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "reason": "fraudulent",
        "balance_transactions": [{"id": "txn_1", "fee": 1500}],
    }
    return {**found, **fields}


async def test_an_opened_dispute_is_a_chargeback_with_its_fee(world: StripeWorld) -> None:
    headers, body = signed(event("charge.dispute.created", dispute()), at=world.clock.now())
    assert world.gateway.verify(headers, body) == Chargeback(
        dispute_id="dp_1", txn_id="pi_1", amount_minor=1990, currency="USD", fee_minor=1500, reason="fraudulent"
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"payment_intent": None}, NotificationMismatch),
        ({"object": "charge"}, MalformedCallback),
        ({"amount": "19.90"}, MalformedCallback),
        ({"balance_transactions": [{"fee": -1}]}, MalformedCallback),
    ],
)
async def test_a_dispute_kaquan_cannot_read_is_refused(
    world: StripeWorld, fields: dict[str, object], error: type[Exception]
) -> None:
    headers, body = signed(event("charge.dispute.created", dispute(**fields)), at=world.clock.now())
    with pytest.raises(error):
        world.gateway.verify(headers, body)
