"""The simulated platform speaks WeChat Pay's side: it checks the merchant's signatures and serves the buyer."""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.support.wechatpay import PUBLIC_URL, WechatPayWorld, session_keys, stranger_keys, today, world

from kaquan.kit import clock
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.simulator import TradeNotPayable

ORDER: dict[str, object] = {
    "appid": "wxd678efh567hg6787",
    "mchid": "1900000109",
    "description": "腾讯视频VIP月卡 x1",
    "out_trade_no": "T3kq8mXr9_Lp-2sVb7Nc4dEf",
    "notify_url": f"{PUBLIC_URL}/payments/wechatpay/notify",
    "amount": {"total": 1990, "currency": "CNY"},
}
NATIVE = "/sim/wechatpay/v3/pay/transactions/native"


@pytest.fixture
def wx(tmp_path: Path) -> WechatPayWorld:
    return world(tmp_path)


@pytest.fixture
async def platform(wx: WechatPayWorld) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client at the simulator, mounted as in a demo server: the test signs (or not) by hand."""
    mounted = Starlette(routes=[Mount("/sim/wechatpay", wx.provider.app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(mounted), base_url=PUBLIC_URL) as client:
        yield client


def signed(
    url: str,
    body: bytes,
    *,
    key: rsa.RSAPrivateKey | None = None,
    serial: str | None = None,
    method: str = "POST",
    seconds_ago: int = 0,
    signed_url: str | None = None,
) -> dict[str, str]:
    auth = protocol.authorize(
        key or session_keys().merchant_key,
        mchid="1900000109",
        serial_no=serial or session_keys().merchant_serial,
        method=method,
        url=signed_url or url,
        body=body,
        timestamp=int(clock.now().timestamp()) - seconds_ago,
        nonce=protocol.new_nonce(),
    )
    return {"Authorization": auth.header(), "Content-Type": "application/json"}


def body_of(order: dict[str, object]) -> bytes:
    return json.dumps(order, ensure_ascii=False).encode()


async def test_a_request_signed_by_the_merchant_key_opens_a_trade_and_the_answer_is_platform_signed(
    wx: WechatPayWorld, platform: httpx.AsyncClient
) -> None:
    body = body_of(ORDER)
    answer = await platform.post(NATIVE, content=body, headers=signed(NATIVE, body))
    assert answer.status_code == 200
    assert answer.json()["code_url"].startswith(f"{PUBLIC_URL}/sim/wechatpay/qr/")
    signature = protocol.read_platform_signature(dict(answer.headers))
    assert signature is not None and signature.serial == session_keys().platform_key_id
    keys = {signature.serial: session_keys().platform_key.public_key()}
    assert protocol.platform_verify(keys, signature, answer.content)


@pytest.mark.parametrize(
    "forgery",
    [
        {"key": stranger_keys().merchant_key},  # another key under our serial
        {"serial": "0000000000000000000000000000000000000000"},  # a certificate the platform does not know
        {"seconds_ago": 301},  # older than five minutes
        {"signed_url": "/sim/wechatpay/v3/pay/transactions/h5"},  # signed for another path
    ],
    ids=["other-key", "unknown-serial", "stale", "other-path"],
)
async def test_a_request_not_properly_signed_by_the_merchant_is_refused_401_sign_error(
    wx: WechatPayWorld, platform: httpx.AsyncClient, forgery: dict[str, object]
) -> None:
    body = body_of(ORDER)
    answer = await platform.post(NATIVE, content=body, headers=signed(NATIVE, body, **forgery))  # type: ignore[arg-type]
    assert answer.status_code == 401
    assert answer.json()["code"] == "SIGN_ERROR"
    assert wx.provider.trade(str(ORDER["out_trade_no"])) is None


async def test_a_body_changed_after_signing_or_no_authorization_at_all_is_refused(
    wx: WechatPayWorld, platform: httpx.AsyncClient
) -> None:
    body = body_of(ORDER)
    richer = body_of({**ORDER, "amount": {"total": 1, "currency": "CNY"}})
    assert (await platform.post(NATIVE, content=richer, headers=signed(NATIVE, body))).status_code == 401
    assert (await platform.post(NATIVE, content=body)).status_code == 401


async def test_a_query_string_is_part_of_what_is_signed(wx: WechatPayWorld, platform: httpx.AsyncClient) -> None:
    await wx.gateway.create(wx.request())
    url = f"/sim/wechatpay/v3/pay/transactions/out-trade-no/{ORDER['out_trade_no']}?mchid=1900000109"
    good = await platform.get(url, headers=signed(url, b"", method="GET"))
    assert good.status_code == 200 and good.json()["trade_state"] == "NOTPAY"
    path_only = url.split("?")[0]
    assert (await platform.get(url, headers=signed(url, b"", method="GET", signed_url=path_only))).status_code == 401


async def test_an_order_for_another_app_is_refused_as_wechat_pay_does(
    wx: WechatPayWorld, platform: httpx.AsyncClient
) -> None:
    body = body_of({**ORDER, "appid": "wx0000000000000000"})
    answer = await platform.post(NATIVE, content=body, headers=signed(NATIVE, body))
    assert (answer.status_code, answer.json()["code"]) == (400, "APPID_MCHID_NOT_MATCH")


@pytest.mark.parametrize(
    "change",
    [
        {"out_trade_no": "short"},
        {"amount": {"total": 0, "currency": "CNY"}},
        {"amount": {"total": 19.9, "currency": "CNY"}},
        {"amount": {"total": 1990, "currency": "USD"}},
        {"description": ""},
    ],
)
async def test_an_order_with_a_bad_parameter_is_refused_param_error(
    wx: WechatPayWorld, platform: httpx.AsyncClient, change: dict[str, object]
) -> None:
    body = body_of({**ORDER, **change})
    answer = await platform.post(NATIVE, content=body, headers=signed(NATIVE, body))
    assert (answer.status_code, answer.json()["code"]) == (400, "PARAM_ERROR")


async def test_the_buyer_pays_on_the_qr_landing_page_and_the_shop_is_notified(
    wx: WechatPayWorld, platform: httpx.AsyncClient
) -> None:
    action = await wx.gateway.create(wx.request())
    assert action.qr is not None
    page = await platform.get(action.qr)
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text and "确认付款 ¥19.90" in page.text
    assert "<script" not in page.text and "http" not in page.text.split("</style>")[0].split("<style>")[1]
    paid = await platform.post(action.qr.replace("/qr/", "/pay/"))
    assert paid.status_code == 200 and "支付成功" in paid.text
    assert wx.shop.notifications[-1].kind == "paid"
    assert (await platform.get(action.qr)).status_code == 409  # paid: nothing left to pay


async def test_the_h5_checkout_sends_the_buyer_back_to_the_order_page_after_paying(
    wx: WechatPayWorld, platform: httpx.AsyncClient
) -> None:
    action = await wx.gateway.create(wx.request("h5"))
    assert action.url is not None
    page = await platform.get(action.url)
    form_action = page.text.split('action="')[1].split('"')[0].replace("&amp;", "&")
    done = await platform.post(form_action)
    assert done.status_code == 303
    assert done.headers["location"] == f"{PUBLIC_URL}/orders/KQ20261205000123"
    assert wx.shop.notifications[-1].payment_token == wx.request().token


async def test_the_jsapi_bridge_refuses_parameters_whose_pay_sign_is_not_the_merchants(wx: WechatPayWorld) -> None:
    action = await wx.gateway.create(wx.request("jsapi"))
    with pytest.raises(TradeNotPayable):
        await wx.provider.bridge_pay({**action.fields, "package": "prepay_id=wx-someone-elses"})
    with pytest.raises(TradeNotPayable):
        await wx.provider.bridge_pay({**action.fields, "paySign": action.fields["paySign"][::-1]})
    assert wx.provider.sent() == []


async def test_a_trade_is_paid_once_and_an_unknown_one_never(wx: WechatPayWorld) -> None:
    asked = await wx.paid()
    with pytest.raises(TradeNotPayable):
        await wx.provider.pay(asked.token)
    with pytest.raises(TradeNotPayable):
        await wx.provider.pay("never-created-0001")
    assert len(wx.provider.sent()) == 1


async def test_a_trade_opened_with_an_expiry_is_payable_until_then(wx: WechatPayWorld) -> None:
    asked = wx.request(hold=timedelta(minutes=5))
    await wx.gateway.create(asked)
    clock.travel(299)
    assert await wx.provider.pay(asked.token) is not None


async def test_a_notification_the_shop_does_not_take_is_kept_as_sent_with_its_answer(tmp_path: Path) -> None:
    wx = world(tmp_path)
    asked = wx.request()
    await wx.gateway.create(asked)
    trade = wx.provider.trade(asked.token)
    assert trade is not None
    trade.notify_url = f"{PUBLIC_URL}/payments/elsewhere"  # a route the shop does not serve
    sent = await wx.provider.pay(asked.token)
    assert sent is not None and sent.status_code == 404
    assert wx.provider.sent() == [sent] and wx.shop.received == []


def test_the_bill_of_a_quiet_day_is_the_header_and_zero_totals(wx: WechatPayWorld) -> None:
    bill = protocol.read_bill(wx.provider.bill(today()))
    assert bill.rows == []
    assert bill.totals["总交易单数"] == "0" and bill.totals["应结订单总金额"] == "0.00"


async def test_a_trade_paid_on_another_day_is_on_that_days_bill_only(wx: WechatPayWorld) -> None:
    await wx.paid()
    assert len(protocol.read_bill(wx.provider.bill(today())).rows) == 1
    assert protocol.read_bill(wx.provider.bill(today() - timedelta(days=1))).rows == []
