"""The WeChat Pay adapter against the simulated platform: paying, querying, closing, refunding, bills, failures."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.support.wechatpay import NOTIFY_URL, WechatPayWorld, session_keys, today, world

from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.payments.errors import GatewayFailed, GatewayRefused, MethodNotOffered
from kaquan.payments.gateway import Notification, RefundResult, TradeState
from kaquan.payments.plugins import GatewaySetup
from kaquan.payments.wechatpay import protocol


@pytest.fixture
def wx(tmp_path: Path) -> WechatPayWorld:
    return world(tmp_path)


async def test_a_native_trade_is_a_qr_code_for_the_landing_page_that_shows_the_amount(wx: WechatPayWorld) -> None:
    action = await wx.gateway.create(wx.request("native"))
    assert action.kind == "qr"
    assert action.qr is not None and action.qr.startswith("https://shop.example/sim/wechatpay/qr/wx")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(wx.provider.app), base_url="https://shop.example") as c:
        page = await c.get(urlsplit(action.qr).path.removeprefix("/sim/wechatpay"))
    assert page.status_code == 200
    assert "确认付款 ¥19.90" in page.text


async def test_an_h5_trade_redirects_to_checkout_and_back_to_the_order_page(wx: WechatPayWorld) -> None:
    action = await wx.gateway.create(wx.request("h5"))
    assert action.kind == "redirect" and action.url is not None
    query = parse_qs(urlsplit(action.url).query)
    assert query["redirect_url"] == ["https://shop.example/orders/KQ20261205000123"]
    trade = wx.provider.trade(wx.request().token)
    assert trade is not None and trade.trade_type == "MWEB"


async def test_a_jsapi_trade_gives_bridge_parameters_signed_with_the_merchant_key(wx: WechatPayWorld) -> None:
    action = await wx.gateway.create(wx.request("jsapi"))
    assert action.kind == "jsapi"
    fields = action.fields
    assert fields["appId"] == "wxd678efh567hg6787" and fields["signType"] == "RSA"
    assert fields["package"] == f"prepay_id={action.provider_ref}"
    message = protocol.jsapi_message(fields["appId"], fields["timeStamp"], fields["nonceStr"], fields["package"])
    assert protocol.rsa_verify(session_keys().merchant_key.public_key(), message, fields["paySign"])
    sent = await wx.provider.bridge_pay(fields)
    assert sent is not None and sent.status_code == 200
    assert wx.shop.notifications[-1].payer == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.mark.parametrize("method", ["native", "h5", "jsapi"])
async def test_a_paid_trade_notifies_the_shop_which_reads_paid_with_the_amount_and_transaction(
    wx: WechatPayWorld, method: str
) -> None:
    asked = wx.request(method, amount_minor=4590)
    await wx.gateway.create(asked)
    sent = await wx.provider.pay(asked.token)
    assert sent is not None and sent.url == NOTIFY_URL
    assert (sent.status_code, sent.answer) == (200, '{"code":"SUCCESS","message":"成功"}'.encode())
    trade = wx.provider.trade(asked.token)
    assert trade is not None
    assert wx.shop.received == [
        Notification(
            kind="paid",
            payment_token=asked.token,
            amount_minor=4590,
            currency="CNY",
            txn_id=trade.transaction_id,
            payer=trade.openid,
        )
    ]


async def test_a_query_says_pending_before_paying_and_paid_after_even_when_the_notification_was_lost(
    wx: WechatPayWorld,
) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    assert await wx.gateway.query(asked.token) == TradeState(status="pending", amount_minor=1990, currency="CNY")
    assert await wx.provider.pay(asked.token, notify=False) is None
    assert wx.shop.received == [] and wx.provider.sent() == []
    state = await wx.gateway.query(asked.token)
    trade = wx.provider.trade(asked.token)
    assert trade is not None
    assert state == TradeState(
        "paid", amount_minor=1990, currency="CNY", txn_id=trade.transaction_id, payer=trade.openid
    )


async def test_a_trade_the_platform_never_opened_is_not_found(wx: WechatPayWorld) -> None:
    assert await wx.gateway.query("never-created-0001") == TradeState(status="not_found")


async def test_a_closed_trade_queries_closed_and_can_no_longer_be_paid(wx: WechatPayWorld) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    await wx.gateway.close(asked.token)
    await wx.gateway.close(asked.token)  # closing twice is fine
    assert (await wx.gateway.query(asked.token)).status == "closed"
    with pytest.raises(Exception, match="CLOSED"):
        await wx.provider.pay(asked.token)


async def test_closing_a_trade_never_opened_succeeds_and_closing_a_paid_one_is_refused(wx: WechatPayWorld) -> None:
    await wx.gateway.close("never-created-0001")
    asked = await wx.paid()
    with pytest.raises(GatewayRefused) as refused:
        await wx.gateway.close(asked.token)
    assert refused.value.details["code"] == "ORDERPAID"


async def test_a_trade_past_its_expiry_cannot_be_paid_and_stays_pending_until_closed(wx: WechatPayWorld) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    clock.travel(15 * 60 + 1)
    with pytest.raises(Exception, match="expired"):
        await wx.provider.pay(asked.token)
    assert (await wx.gateway.query(asked.token)).status == "pending"
    await wx.gateway.close(asked.token)
    assert (await wx.gateway.query(asked.token)).status == "closed"


async def test_the_same_trade_asked_twice_is_one_trade_and_a_different_one_under_its_number_is_refused(
    wx: WechatPayWorld,
) -> None:
    first = await wx.gateway.create(wx.request())
    assert await wx.gateway.create(wx.request()) == first
    with pytest.raises(GatewayRefused) as refused:
        await wx.gateway.create(wx.request(amount_minor=2990))
    assert refused.value.details["code"] == "INVALID_REQUEST"


async def test_a_method_not_offered_or_another_currency_never_reaches_the_platform(wx: WechatPayWorld) -> None:
    with pytest.raises(MethodNotOffered):
        await wx.gateway.create(wx.request("page"))
    with pytest.raises(GatewayRefused):
        await wx.gateway.create(wx.request(currency="USD"))
    assert wx.provider.trade(wx.request().token) is None


async def test_a_full_refund_succeeds_with_its_notification_and_the_trade_turns_refund(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    result = await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    assert result.status == "processing" and result.provider_ref is not None
    await wx.provider.settle()
    assert await wx.gateway.query_refund(asked.token, "RF-1") == RefundResult("succeeded", result.provider_ref)
    trade = wx.provider.trade(asked.token)
    assert trade is not None and trade.state == "REFUND"
    assert (await wx.gateway.query(asked.token)).status == "paid"  # paid, then refunded: the payment happened
    assert wx.shop.received[-1] == Notification(
        kind="refund",
        payment_token=asked.token,
        amount_minor=1990,
        currency="CNY",
        txn_id=trade.transaction_id,
        refund_no="RF-1",
        refund_status="succeeded",
    )


async def test_partial_refunds_add_up_and_one_beyond_what_remains_is_refused(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 990))
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-2", 500))
    with pytest.raises(GatewayRefused) as refused:
        await wx.gateway.refund(wx.refund_request(asked.token, "RF-3", 501))
    assert refused.value.details["code"] == "PARAM_ERROR"
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-3", 500))
    await wx.provider.settle()
    assert [r.refund for r in wx.provider.refunds(asked.token)] == [990, 500, 500]
    assert sorted((n.refund_no, n.amount_minor) for n in wx.shop.notifications if n.kind == "refund") == [
        ("RF-1", 990),
        ("RF-2", 500),
        ("RF-3", 500),
    ]


async def test_the_same_refund_number_twice_is_one_refund_at_the_platform(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    first = await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    again = await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    await wx.provider.settle()
    after = await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    assert first.provider_ref == again.provider_ref == after.provider_ref
    assert after.status == "succeeded"
    assert len(wx.provider.refunds(asked.token)) == 1
    assert len([n for n in wx.shop.notifications if n.kind == "refund"]) == 1
    with pytest.raises(GatewayRefused):  # the same number for another amount is not the same refund
        await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 100))


async def test_concurrent_retries_of_one_refund_number_never_pay_out_twice(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    results = await asyncio.gather(*(wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990)) for _ in range(5)))
    assert len({result.provider_ref for result in results}) == 1
    await wx.provider.settle()
    assert sum(refund.refund for refund in wx.provider.refunds(asked.token)) == 1990


@pytest.mark.parametrize(("outcome", "status"), [("CLOSED", "failed"), ("ABNORMAL", "failed")])
async def test_a_refund_the_platform_closes_or_cannot_deliver_reads_failed(
    wx: WechatPayWorld, outcome: str, status: str
) -> None:
    asked = await wx.paid()
    wx.provider.refund_outcome = outcome
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    await wx.provider.settle()
    assert (await wx.gateway.query_refund(asked.token, "RF-1")).status == status
    note = wx.shop.notifications[-1]
    assert (note.kind, note.refund_status, note.refund_no) == ("refund", status, "RF-1")


async def test_a_closed_refund_gives_its_amount_back_to_refund_again(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    wx.provider.refund_outcome = "CLOSED"
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 1990))
    await wx.provider.settle()
    wx.provider.refund_outcome = "SUCCESS"
    assert (await wx.gateway.refund(wx.refund_request(asked.token, "RF-2", 1990))).status == "processing"


async def test_refunding_an_unpaid_trade_or_with_the_wrong_total_is_refused(wx: WechatPayWorld) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    with pytest.raises(GatewayRefused):
        await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 100))
    await wx.provider.pay(asked.token)
    with pytest.raises(GatewayRefused):
        await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 100, total_minor=2000))
    with pytest.raises(GatewayRefused) as unknown:
        await wx.gateway.query_refund(asked.token, "RF-404")
    assert unknown.value.details["code"] == "RESOURCE_NOT_EXISTS"


async def test_a_refund_number_of_another_payment_is_not_this_payments_refund(wx: WechatPayWorld) -> None:
    first = await wx.paid(token="Pay-one-000000001")
    await wx.paid(token="Pay-two-000000002")
    await wx.gateway.refund(wx.refund_request(first.token, "RF-1", 100))
    with pytest.raises(GatewayRefused):
        await wx.gateway.query_refund("Pay-two-000000002", "RF-1")


async def test_the_days_bill_downloads_checked_against_its_hash_in_the_platforms_format(wx: WechatPayWorld) -> None:
    asked = await wx.paid(amount_minor=1990)
    await wx.paid("h5", token="Second-trade-0002", amount_minor=4590)
    await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 990))
    await wx.provider.settle()
    data = await wx.gateway.download_bill(today())
    assert data == wx.provider.bill(today())
    bill = protocol.read_bill(data)
    assert [(row["商户订单号"], row["交易类型"], row["交易状态"]) for row in bill.rows] == [
        (asked.token, "NATIVE", "SUCCESS"),
        ("Second-trade-0002", "MWEB", "SUCCESS"),
        (asked.token, "NATIVE", "REFUND"),
    ]
    assert bill.rows[2]["商户退款单号"] == "RF-1" and bill.rows[2]["退款金额"] == "9.90"
    assert bill.totals == {
        "总交易单数": "3",
        "应结订单总金额": "65.80",
        "退款总金额": "9.90",
        "充值券退款总金额": "0.00",
        "手续费总金额": "0.34",  # 0.12 + 0.28 - 0.06
        "订单总金额": "65.80",
        "申请退款总金额": "9.90",
    }


async def test_a_bill_that_does_not_match_its_signed_hash_is_a_failed_download(tmp_path: Path) -> None:
    honest = world(tmp_path)
    await honest.paid()

    async def tampering(request: httpx.Request) -> httpx.Response:
        mounted = Starlette(routes=[Mount("/sim/wechatpay", honest.provider.app)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(mounted)) as inner:
            answer = await inner.request(request.method, request.url, headers=request.headers, content=request.content)
        if request.url.path.endswith("/v3/billdownload/file"):
            return httpx.Response(200, content=answer.content.replace(b"19.90", b"1.99"))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    wx = world(tmp_path, transport=httpx.MockTransport(tampering))
    with pytest.raises(GatewayFailed, match="hash"):
        await wx.gateway.download_bill(today())


async def test_a_bill_for_a_day_to_come_does_not_exist(wx: WechatPayWorld) -> None:
    with pytest.raises(GatewayRefused) as refused:
        await wx.gateway.download_bill(today().replace(year=today().year + 1))
    assert refused.value.details["code"] == "NO_STATEMENT_EXIST"


# --- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_platform_answering_5xx_is_a_failed_call_to_retry(wx: WechatPayWorld, status: int) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    wx.provider.outage = status
    with pytest.raises(GatewayFailed) as failed:
        await wx.gateway.query(asked.token)
    assert failed.value.details["status"] == status
    with pytest.raises(GatewayFailed):
        await wx.gateway.refund(wx.refund_request(asked.token, "RF-1", 100))
    wx.provider.outage = None
    assert (await wx.gateway.query(asked.token)).status == "pending"


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_platform_that_does_not_answer_in_time_is_a_failed_call(
    wx: WechatPayWorld, silent_server: str, tmp_path: Path
) -> None:
    gateway = type(wx.gateway)(wx.gateway.merchant, _network_setup(tmp_path), base_url=silent_server, timeout_s=0.05)
    with pytest.raises(GatewayFailed, match="in time"):
        await gateway.query("T3kq8mXr9_Lp-2sVb7Nc4dEf")


async def test_a_platform_that_cannot_be_reached_is_a_failed_call(wx: WechatPayWorld, tmp_path: Path) -> None:
    gateway = type(wx.gateway)(wx.gateway.merchant, _network_setup(tmp_path), base_url="http://127.0.0.1:9")
    with pytest.raises(GatewayFailed, match="reached"):
        await gateway.refund(wx.refund_request("T3kq8mXr9_Lp-2sVb7Nc4dEf", "RF-1", 100))


async def test_an_answer_without_a_valid_platform_signature_is_never_believed(tmp_path: Path) -> None:
    def forged(request: httpx.Request) -> httpx.Response:
        body = b'{"trade_state":"SUCCESS","transaction_id":"4200","amount":{"total":1990,"currency":"CNY"}}'
        signed = protocol.platform_sign(
            session_keys().merchant_key, "PUB_KEY_ID_0000", body, timestamp=int(clock.now().timestamp()), nonce="n"
        )
        return httpx.Response(200, content=body, headers=signed.headers())

    wx = world(tmp_path, transport=httpx.MockTransport(forged))
    with pytest.raises(GatewayFailed, match="signature"):
        await wx.gateway.query("T3kq8mXr9_Lp-2sVb7Nc4dEf")


def _network_setup(tmp_path: Path) -> GatewaySetup:
    """No test transport: the gateway goes through real sockets."""
    return GatewaySetup(settings=Settings(var_dir=tmp_path), public_url="https://shop.example", state_dir=tmp_path)
