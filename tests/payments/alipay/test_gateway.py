"""The Alipay adapter against the Alipay simulator: paying, asking, closing, refunding, and every notification."""

from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from tests.support.alipay import (
    NOTIFY_URL,
    SIM_URL,
    START,
    AlipayWorld,
    alipay_world,
    key_pair,
    open_cashier,
    payment,
)
from tests.support.notifications import read

from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.bill import read_bill
from kaquan.payments.alipay.sim_trades import TradeNotPayable
from kaquan.payments.errors import (
    GatewayFailed,
    GatewayRefused,
    InvalidSignature,
    MalformedCallback,
    MethodNotOffered,
    NotificationMismatch,
    StaleCallback,
)
from kaquan.payments.gateway import Ignored, RefundRequest


@pytest.fixture
def world() -> AlipayWorld:
    return alipay_world()


def refund(number: str, amount_minor: int, token: str = "KQP0001") -> RefundRequest:  # noqa: S107
    return RefundRequest(
        payment_token=token,
        txn_id=None,
        refund_no=number,
        amount_minor=amount_minor,
        total_minor=1990,
        currency="CNY",
        reason="买家不要了",
        notify_url=NOTIFY_URL,
    )


async def paid(world: AlipayWorld, token: str = "KQP0001", amount_minor: int = 1990) -> None:  # noqa: S107
    await world.gateway.create(payment(token, amount_minor=amount_minor))
    await world.simulator.pay(token)


def signed_form(params: dict[str, str]) -> bytes:
    return urlencode(protocol.sign_notification(params, key_pair("alipay"))).encode()


async def a_paid_notification(world: AlipayWorld) -> dict[str, str]:
    await paid(world)
    return dict(parse_qsl(world.simulator.sent()[-1].body.decode()))


# --- paying, one method at a time ------------------------------------------------------------


async def test_a_qr_payment_is_precreated_and_its_notification_reads_paid_with_alipays_trade_number(
    world: AlipayWorld,
) -> None:
    action = await world.gateway.create(payment(method="qr"))
    assert action.kind == "qr"
    assert action.qr is not None and action.qr.startswith(f"{SIM_URL}/qr/")

    sent = await world.simulator.pay("KQP0001")

    assert sent is not None and sent.url == NOTIFY_URL
    assert (sent.status_code, sent.answer) == (200, b"success")
    [note] = world.shop.accepted
    trade = await world.gateway.query("KQP0001")
    assert (note.kind, note.payment_token, note.amount_minor, note.currency) == ("paid", "KQP0001", 1990, "CNY")
    assert note.txn_id == trade.txn_id is not None
    assert note.payer is not None and note.payer.startswith("2088")


@pytest.mark.parametrize(("method", "product_code"), [("page", "FAST_INSTANT_TRADE_PAY"), ("wap", "QUICK_WAP_WAY")])
async def test_page_and_wap_payments_are_signed_redirects_to_alipays_cashier(
    world: AlipayWorld, method: str, product_code: str
) -> None:
    action = await world.gateway.create(payment(method=method))

    assert action.kind == "redirect" and action.url is not None
    assert action.url.startswith(f"{SIM_URL}/gateway.do?")
    params = dict(parse_qsl(urlsplit(action.url).query))
    assert params["method"] == f"alipay.trade.{method}.pay"
    assert params["notify_url"] == NOTIFY_URL
    assert f'"product_code":"{product_code}"' in params["biz_content"]
    assert '"time_expire":"2024-05-20 10:15:00"' in params["biz_content"]
    assert (await world.gateway.query("KQP0001")).status == "not_found"  # nobody opened the cashier yet

    cashier = await open_cashier(world, action.url)
    assert cashier.status_code == 200 and "确认付款 ¥19.90" in cashier.text
    assert (await world.gateway.query("KQP0001")).status == "pending"
    await world.simulator.pay("KQP0001")
    assert [(note.kind, note.amount_minor) for note in world.shop.accepted] == [("paid", 1990)]


async def test_a_method_the_merchant_does_not_offer_or_a_currency_alipay_does_not_take_is_refused() -> None:
    world = alipay_world()
    narrow = world.gateway_with(methods=("qr",))
    with pytest.raises(MethodNotOffered):
        await narrow.create(payment(method="page"))
    usd = payment()
    with pytest.raises(GatewayRefused):
        await world.gateway.create(type(usd)(**{**usd.__dict__, "currency": "USD"}))


async def test_the_subject_loses_the_characters_alipay_forbids(world: AlipayWorld) -> None:
    base = payment(method="page")
    action = await world.gateway.create(type(base)(**{**base.__dict__, "subject": "Steam/充值卡=100&元"}))
    assert action.url is not None
    assert '"subject":"Steam 充值卡 100 元"' in dict(parse_qsl(urlsplit(action.url).query))["biz_content"]


# --- asking and closing ----------------------------------------------------------------------


async def test_query_follows_the_trade_from_pending_to_paid(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    assert (await world.gateway.query("KQP0001")).status == "pending"
    await world.simulator.pay("KQP0001", notify=False)  # the notification is lost

    trade = await world.gateway.query("KQP0001")

    assert (trade.status, trade.amount_minor, trade.currency) == ("paid", 1990, "CNY")
    assert world.shop.accepted == []


async def test_an_unpaid_trade_closes_and_stays_closed_and_cannot_be_paid(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    await world.gateway.close("KQP0001")
    await world.gateway.close("KQP0001")  # closing twice is still closed
    assert (await world.gateway.query("KQP0001")).status == "closed"
    with pytest.raises(TradeNotPayable):
        await world.simulator.pay("KQP0001")


async def test_closing_a_trade_the_buyer_never_opened_is_nothing_to_do(world: AlipayWorld) -> None:
    await world.gateway.create(payment(method="page"))
    await world.gateway.close("KQP0001")


async def test_closing_a_paid_trade_is_refused_by_alipay(world: AlipayWorld) -> None:
    await paid(world)
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.close("KQP0001")
    assert refused.value.details["sub_code"] == "ACQ.TRADE_STATUS_ERROR"


async def test_a_trade_expires_at_the_orders_hold_and_alipay_notifies_it_closed(world: AlipayWorld) -> None:
    await world.gateway.create(payment(minutes=15))
    world.clock.advance(minutes=15)

    assert (await world.gateway.query("KQP0001")).status == "closed"
    with pytest.raises(TradeNotPayable):
        await world.simulator.pay("KQP0001")
    [sent] = await world.simulator.expire_due()
    assert sent.answer == b"success"
    assert [(note.kind, note.amount_minor) for note in world.shop.accepted] == [("closed", 1990)]
    assert await world.simulator.expire_due() == []


# --- refunds ---------------------------------------------------------------------------------


async def test_a_partial_refund_then_the_rest_each_notify_a_refund_and_close_the_trade_at_the_end(
    world: AlipayWorld,
) -> None:
    await paid(world)

    first = await world.gateway.refund(refund("R1", 500))
    await world.simulator.drain()
    rest = await world.gateway.refund(refund("R2", 1490))
    await world.simulator.drain()

    assert first.status == rest.status == "succeeded"
    refunds = [note for note in world.shop.accepted if note.kind == "refund"]
    assert [(note.refund_no, note.refund_status, note.amount_minor) for note in refunds] == [
        ("R1", "succeeded", 500),
        ("R2", "succeeded", 1990),  # Alipay tells the refunded total, not this refund's share
    ]
    assert (await world.gateway.query("KQP0001")).status == "closed"
    sent = [dict(parse_qsl(note.body.decode())) for note in world.simulator.sent()]
    assert [params["trade_status"] for params in sent] == ["TRADE_SUCCESS", "TRADE_SUCCESS", "TRADE_CLOSED"]


async def test_the_same_refund_number_twice_is_one_refund_at_alipay(world: AlipayWorld) -> None:
    await paid(world)

    await world.gateway.refund(refund("R1", 500))
    again = await world.gateway.refund(refund("R1", 500))
    await world.simulator.drain()

    assert again.status == "succeeded"
    trade = world.simulator.trade("KQP0001")
    assert trade is not None and trade.refunded_fen == 500
    assert len([note for note in world.shop.accepted if note.kind == "refund"]) == 1


async def test_a_refund_larger_than_what_remains_is_refused(world: AlipayWorld) -> None:
    await paid(world)
    await world.gateway.refund(refund("R1", 1500))

    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.refund(refund("R2", 491))

    assert refused.value.details["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    trade = world.simulator.trade("KQP0001")
    assert trade is not None and trade.refunded_fen == 1500
    await world.simulator.drain()


async def test_an_unpaid_trade_cannot_be_refunded(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.refund(refund("R1", 100))
    assert refused.value.details["sub_code"] == "ACQ.TRADE_STATUS_ERROR"


async def test_a_refund_is_found_by_its_number_and_an_unknown_one_is_not(world: AlipayWorld) -> None:
    await paid(world)
    await world.gateway.refund(refund("R1", 500))
    await world.simulator.drain()

    assert (await world.gateway.query_refund("KQP0001", "R1")).status == "succeeded"
    missing = await world.gateway.query_refund("KQP0001", "R9")
    assert missing.status == "failed" and "no refund" in missing.detail
    assert (await world.gateway.query_refund("KQP0404", "R1")).status == "failed"


async def test_trade_finished_after_trade_success_still_reads_paid(world: AlipayWorld) -> None:
    await paid(world)
    await world.simulator.finish("KQP0001")
    assert [(note.kind, note.amount_minor) for note in world.shop.accepted] == [("paid", 1990), ("paid", 1990)]


async def test_a_resent_notification_reads_the_same(world: AlipayWorld) -> None:
    await paid(world)
    again = await world.simulator.resend(world.simulator.sent()[0])
    assert again.answer == b"success"
    assert world.shop.accepted[0] == world.shop.accepted[1]


# --- notifications that must not be believed -------------------------------------------------


async def test_a_tampered_notification_fails_its_signature(world: AlipayWorld) -> None:
    await paid(world)
    body = world.simulator.sent()[-1].body
    tampered = body.replace(b"total_amount=19.90", b"total_amount=1990")
    assert tampered != body
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, tampered)


async def test_a_notification_signed_by_anyone_but_alipay_or_unsigned_is_refused(world: AlipayWorld) -> None:
    params = await a_paid_notification(world)
    forged = urlencode(protocol.sign_notification(params, key_pair("stranger"))).encode()
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, forged)
    unsigned = urlencode({k: v for k, v in params.items() if k != "sign"}).encode()
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, unsigned)


@pytest.mark.parametrize(
    "change",
    [{"app_id": "2021009999999999"}, {"seller_id": "2088999999999999"}, {"trans_currency": "USD"}],
    ids=["another app", "another merchant", "another currency"],
)
async def test_a_genuine_notification_about_someone_elses_trade_is_a_mismatch(
    world: AlipayWorld, change: dict[str, str]
) -> None:
    params = await a_paid_notification(world)
    with pytest.raises(NotificationMismatch):
        world.gateway.verify({}, signed_form({**params, **change}))


async def test_a_notification_is_believed_within_alipays_25_hours_of_retries_and_not_after(
    world: AlipayWorld,
) -> None:
    params = await a_paid_notification(world)
    body = signed_form(params)

    world.clock.advance(hours=24, minutes=59)
    assert read(world.gateway, {}, body).kind == "paid"
    world.clock.advance(minutes=2)
    with pytest.raises(StaleCallback):
        world.gateway.verify({}, body)
    future = protocol.china_time(START + timedelta(days=1, hours=2))
    with pytest.raises(StaleCallback):
        world.gateway.verify({}, signed_form({**params, "notify_time": future}))


@pytest.mark.parametrize(
    "body",
    [b"", b"%%%", b"a=1&a=2", "total_amount=19.90".encode("gbk") + b"&subject=\xcc\xda\xd1\xb6"],
    ids=["empty", "not a form", "a name twice", "not utf-8"],
)
def test_an_unreadable_body_is_malformed(world: AlipayWorld, body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        world.gateway.verify({}, body)


@pytest.mark.parametrize(
    "change",
    [
        {"total_amount": "19.999"},
        {"out_trade_no": ""},
        {"notify_time": "yesterday"},
        {"notify_type": "trade_refund_sync"},
        {"trade_status": "TRADE_PENDING"},
        {"charset": "gbk"},
    ],
    ids=["bad amount", "no trade", "bad time", "other type", "unknown status", "other charset"],
)
async def test_a_signed_notification_kaquan_cannot_read_is_malformed(
    world: AlipayWorld, change: dict[str, str]
) -> None:
    params = await a_paid_notification(world)
    with pytest.raises(MalformedCallback):
        world.gateway.verify({}, signed_form({**params, **change}))


async def test_a_signed_wait_buyer_pay_is_ignored_and_names_its_trade(world: AlipayWorld) -> None:
    params = await a_paid_notification(world)

    note = world.gateway.verify({}, signed_form({**params, "trade_status": "WAIT_BUYER_PAY"}))

    assert note == Ignored("WAIT_BUYER_PAY", payment_token="KQP0001")


async def test_a_wait_buyer_pay_not_signed_by_alipay_or_not_for_this_merchant_is_refused(world: AlipayWorld) -> None:
    params = {**await a_paid_notification(world), "trade_status": "WAIT_BUYER_PAY"}
    forged = urlencode(protocol.sign_notification(params, key_pair("stranger")))
    with pytest.raises(InvalidSignature):
        world.gateway.verify({}, forged.encode())
    with pytest.raises(InvalidSignature):
        world.gateway.verify(
            {}, urlencode({k: v for k, v in params.items() if k not in ("sign", "sign_type")}).encode()
        )
    with pytest.raises(NotificationMismatch):
        world.gateway.verify({}, signed_form({**params, "seller_id": "2088000000000999"}))
    with pytest.raises(StaleCallback):
        world.gateway.verify({}, signed_form({**params, "notify_time": protocol.china_time(START - timedelta(days=2))}))


def test_alipay_hears_success_only_when_the_notification_was_accepted(world: AlipayWorld) -> None:
    accepted = world.gateway.acknowledge(None)
    assert (accepted.status_code, accepted.body, accepted.media_type) == (200, b"success", "text/plain")
    assert world.gateway.acknowledge("invalid_signature").body == b"fail"


# --- Alipay failing, refusing, or not being Alipay -------------------------------------------


async def test_alipay_answering_5xx_is_a_retryable_failure(world: AlipayWorld) -> None:
    await paid(world)
    world.simulator.outage = 503
    with pytest.raises(GatewayFailed):
        await world.gateway.query("KQP0001")
    with pytest.raises(GatewayFailed):
        await world.gateway.refund(refund("R1", 500))
    with pytest.raises(GatewayFailed):
        await world.gateway.create(payment("KQP0002"))
    world.simulator.outage = None
    trade = world.simulator.trade("KQP0001")
    assert trade is not None and trade.refunded_fen == 0


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError])
async def test_alipay_not_answering_in_time_or_unreachable_is_a_retryable_failure(
    error: type[httpx.TransportError],
) -> None:
    def silent(request: httpx.Request) -> httpx.Response:
        raise error("no answer", request=request)

    world = alipay_world(transport=lambda simulator: httpx.MockTransport(silent))
    with pytest.raises(GatewayFailed) as failed:
        await world.gateway.refund(refund("R1", 500))
    assert failed.value.status == 502


async def test_an_answer_not_signed_by_alipay_is_not_believed(world: AlipayWorld) -> None:
    await paid(world)
    believing_a_stranger = world.gateway_with(alipay_public_key=key_pair("stranger").public_key())
    with pytest.raises(GatewayFailed) as failed:
        await believing_a_stranger.query("KQP0001")
    assert "signature" in failed.value.message


async def test_an_unsigned_success_is_not_believed() -> None:
    def unsigned(request: httpx.Request) -> httpx.Response:
        body = '{"alipay_trade_query_response":{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS"}}'
        return httpx.Response(200, text=body)

    world = alipay_world(transport=lambda simulator: httpx.MockTransport(unsigned))
    with pytest.raises(GatewayFailed):
        await world.gateway.query("KQP0001")


async def test_alipay_refuses_a_request_signed_with_another_key(world: AlipayWorld) -> None:
    await paid(world)
    impostor = world.gateway_with(private_key=key_pair("stranger"))
    with pytest.raises(GatewayRefused) as refused:
        await impostor.refund(refund("R1", 500))
    assert refused.value.details["sub_code"] == "isv.invalid-signature"
    trade = world.simulator.trade("KQP0001")
    assert trade is not None and trade.refunded_fen == 0

    page = await impostor.create(payment("KQP0002", method="page"))
    assert page.url is not None
    cashier = await open_cashier(world, page.url)
    assert cashier.status_code == 400 and "isv.invalid-signature" in cashier.text


async def test_alipay_refuses_another_app_id(world: AlipayWorld) -> None:
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway_with(app_id="2021009999999999").query("KQP0001")
    assert refused.value.details["sub_code"] == "isv.invalid-app-id"


# --- the bill --------------------------------------------------------------------------------


async def test_yesterdays_bill_downloads_with_its_payments_refunds_and_fees(world: AlipayWorld) -> None:
    await paid(world)
    await world.gateway.refund(refund("R1", 500))
    await world.simulator.drain()
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.download_bill(START.date())  # today's bill does not exist yet
    assert refused.value.details["sub_code"] == "isp.bill_not_exist"
    world.clock.advance(days=1)

    lines = read_bill(await world.gateway.download_bill(START.date()))

    trade = await world.gateway.query("KQP0001")
    assert [(line.kind, line.trade_no, line.out_trade_no, line.received_fen, line.fee_fen) for line in lines] == [
        ("交易", trade.txn_id, "KQP0001", 1990, -12),
        ("退款", trade.txn_id, "KQP0001", -500, 3),
    ]
    assert lines[1].refund_no == "R1"
