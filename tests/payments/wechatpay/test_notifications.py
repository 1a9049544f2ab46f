"""Verifying WeChat Pay notifications: only the platform's, fresh, for this merchant and app, well formed."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.wechatpay import NOTIFY_URL, WechatPayWorld, session_keys, stranger_keys, world

from kaquan.kit import clock
from kaquan.kit.errors import DomainError
from kaquan.payments.errors import InvalidSignature, MalformedCallback, NotificationMismatch, StaleCallback
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.simulator import WechatPaySimulator


@pytest.fixture
def wx(tmp_path: Path) -> WechatPayWorld:
    return world(tmp_path)


async def paid_resource(wx: WechatPayWorld) -> dict[str, Any]:
    """The decrypted resource of a real payment, for variations on it."""
    asked = wx.request()
    await wx.gateway.create(asked)
    await wx.provider.pay(asked.token, notify=False)
    trade = wx.provider.trade(asked.token)
    assert trade is not None
    return wx.provider.transaction_resource(trade)


def as_platform(wx: WechatPayWorld, resource: dict[str, Any], **sign: Any) -> tuple[dict[str, str], bytes]:
    return wx.provider.signed_notification(
        "TRANSACTION.SUCCESS", resource, original_type="transaction", summary="支付成功", **sign
    )


def impostor(wx: WechatPayWorld, *, platform_key: bool = False, apiv3_key: bool = False) -> WechatPaySimulator:
    """A platform with the same names as ours but another signing key or another merchant's APIv3 key."""
    return WechatPaySimulator(
        mchid=wx.provider.mchid,
        appid=wx.provider.appid,
        apiv3_key=stranger_keys().apiv3_key if apiv3_key else session_keys().apiv3_key,
        merchant_keys={},
        platform_key=stranger_keys().platform_key if platform_key else session_keys().platform_key,
        platform_serial=wx.provider.platform_serial,
        base_url="https://elsewhere.example",
    )


async def test_a_platform_notification_verifies_and_a_duplicate_verifies_the_same(wx: WechatPayWorld) -> None:
    asked = wx.request()
    await wx.gateway.create(asked)
    sent = await wx.provider.pay(asked.token)
    assert sent is not None
    again = await wx.provider.resend(sent)
    assert (again.body, again.headers) == (sent.body, sent.headers)
    assert again.status_code == 200
    assert len(wx.shop.notifications) == 2 and wx.shop.notifications[0] == wx.shop.notifications[1]


async def test_a_notification_signed_by_another_key_under_our_platform_serial_is_forged(wx: WechatPayWorld) -> None:
    headers, body = impostor(wx, platform_key=True).signed_notification(
        "TRANSACTION.SUCCESS", await paid_resource(wx), original_type="transaction", summary="支付成功"
    )
    with pytest.raises(InvalidSignature):
        wx.gateway.verify(headers, body)


async def test_one_changed_byte_in_the_body_breaks_the_signature(wx: WechatPayWorld) -> None:
    headers, body = as_platform(wx, await paid_resource(wx))
    tampered = body.replace(b'"summary":"', b'"summary":"!')
    wx.gateway.verify(headers, body)
    with pytest.raises(InvalidSignature):
        wx.gateway.verify(headers, tampered)


@pytest.mark.parametrize(
    "header", ["Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial"]
)
async def test_a_notification_missing_a_signature_header_is_refused(wx: WechatPayWorld, header: str) -> None:
    headers, body = as_platform(wx, await paid_resource(wx))
    with pytest.raises(InvalidSignature):
        wx.gateway.verify({name: value for name, value in headers.items() if name != header}, body)


async def test_a_notification_naming_a_platform_key_we_do_not_know_is_refused(wx: WechatPayWorld) -> None:
    headers, body = as_platform(wx, await paid_resource(wx))
    with pytest.raises(InvalidSignature) as refused:
        wx.gateway.verify({**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000"}, body)
    assert refused.value.details["serial"] == "PUB_KEY_ID_0000000000000000000000000000"


async def test_wechats_signature_probe_fails_verification_as_it_is_meant_to(wx: WechatPayWorld) -> None:
    headers, body = as_platform(wx, await paid_resource(wx))
    with pytest.raises(InvalidSignature):
        wx.gateway.verify(
            {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]}, body
        )


# +302, not +301: the header's timestamp is whole seconds, cut down, so one signed 301.x s ahead can read as
# 301 s ahead of a clock already a fraction of a second on by the time it is checked: 300.x s, not stale (flaky).
@pytest.mark.parametrize("seconds", [-301, 302, -3600])
async def test_a_notification_signed_more_than_five_minutes_away_is_stale(wx: WechatPayWorld, seconds: int) -> None:
    headers, body = as_platform(wx, await paid_resource(wx), at=clock.now() + timedelta(seconds=seconds))
    with pytest.raises(StaleCallback):
        wx.gateway.verify(headers, body)


async def test_a_notification_signed_just_inside_five_minutes_is_fresh(wx: WechatPayWorld) -> None:
    headers, body = as_platform(wx, await paid_resource(wx), at=clock.now() - timedelta(seconds=299))
    assert wx.gateway.verify(headers, body).kind == "paid"


async def test_a_replayed_notification_goes_stale_once_the_window_passes(wx: WechatPayWorld) -> None:
    headers, body = as_platform(wx, await paid_resource(wx))
    wx.gateway.verify(headers, body)
    clock.travel(301)
    with pytest.raises(StaleCallback):
        wx.gateway.verify(headers, body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"appid": "wx0000000000000000"}, "appid"),
        ({"mchid": "1900000999"}, "mchid"),
        ({"amount": {"total": 1990, "currency": "USD", "payer_total": 1990, "payer_currency": "USD"}}, "currency"),
    ],
)
async def test_a_signed_payment_for_another_app_merchant_or_currency_is_a_mismatch(
    wx: WechatPayWorld, change: dict[str, Any], field: str
) -> None:
    headers, body = as_platform(wx, {**await paid_resource(wx), **change})
    with pytest.raises(NotificationMismatch) as mismatch:
        wx.gateway.verify(headers, body)
    assert field in mismatch.value.details


async def test_a_signed_refund_for_another_merchant_is_a_mismatch(wx: WechatPayWorld) -> None:
    resource = {
        "mchid": "1900000999",
        "out_trade_no": "T3kq8mXr9_Lp-2sVb7Nc4dEf",
        "transaction_id": "4200000001202612050000000001",
        "out_refund_no": "RF-1",
        "refund_id": "50000000001",
        "refund_status": "SUCCESS",
        "amount": {"total": 1990, "refund": 1990, "payer_total": 1990, "payer_refund": 1990},
    }
    headers, body = wx.provider.signed_notification(
        "REFUND.SUCCESS", resource, original_type="refund", summary="退款成功"
    )
    with pytest.raises(NotificationMismatch):
        wx.gateway.verify(headers, body)
    headers, body = wx.provider.signed_notification(
        "REFUND.SUCCESS", {**resource, "mchid": wx.provider.mchid}, original_type="refund", summary="退款成功"
    )
    assert wx.gateway.verify(headers, body).refund_no == "RF-1"


async def test_a_signed_notification_sealed_under_another_merchants_apiv3_key_is_not_authentic_for_us(
    wx: WechatPayWorld,
) -> None:
    # the platform's signature holds (it signed this for someone), but only our APIv3 key proves it is ours
    headers, body = impostor(wx, apiv3_key=True).signed_notification(
        "TRANSACTION.SUCCESS", await paid_resource(wx), original_type="transaction", summary="支付成功"
    )
    with pytest.raises(InvalidSignature, match="APIv3"):
        wx.gateway.verify(headers, body)


@pytest.mark.parametrize(
    "resource_change",
    [
        {"amount": {"total": "19.90", "currency": "CNY"}},
        {"amount": {"total": -1, "currency": "CNY"}},
        {"amount": None},
        {"trade_state": "NOTPAY"},
        {"out_trade_no": None, "amount": {"currency": "CNY"}},
    ],
)
async def test_a_signed_payment_with_a_bad_resource_is_malformed(
    wx: WechatPayWorld, resource_change: dict[str, Any]
) -> None:
    headers, body = as_platform(wx, {**await paid_resource(wx), **resource_change})
    with pytest.raises(MalformedCallback):
        wx.gateway.verify(headers, body)


def platform_signed(wx: WechatPayWorld, body: bytes) -> dict[str, str]:
    signed = protocol.platform_sign(
        session_keys().platform_key,
        wx.provider.platform_serial,
        body,
        timestamp=int(clock.now().timestamp()),
        nonce=protocol.new_nonce(),
    )
    return signed.headers()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event_type":"TRANSACTION.SUCCESS"}',
        b'{"event_type":"TRANSACTION.SUCCESS","resource_type":"plain","resource":{}}',
        b'{"event_type":"TRANSACTION.SUCCESS","resource_type":"encrypt-resource","resource":{"algorithm":"AEAD_AES_256_GCM",'
        b'"ciphertext":"%%%","nonce":"n","associated_data":"transaction"}}',
    ],
)
async def test_a_signed_body_that_is_not_a_notification_is_malformed(wx: WechatPayWorld, body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        wx.gateway.verify(platform_signed(wx, body), body)


async def test_an_event_kaquan_does_not_handle_is_malformed(wx: WechatPayWorld) -> None:
    headers, body = wx.provider.signed_notification(
        "MCHTRANSFER.BILL.FINISHED", {"mchid": wx.provider.mchid}, original_type="mch_payment", summary="转账完成"
    )
    with pytest.raises(MalformedCallback):
        wx.gateway.verify(headers, body)


async def test_a_refund_event_must_agree_with_its_status(wx: WechatPayWorld) -> None:
    resource = {
        "mchid": wx.provider.mchid,
        "out_trade_no": "T3kq8mXr9_Lp-2sVb7Nc4dEf",
        "transaction_id": "4200000001202612050000000001",
        "out_refund_no": "RF-1",
        "refund_id": "50000000001",
        "refund_status": "CLOSED",
        "amount": {"total": 1990, "refund": 1990, "payer_total": 1990, "payer_refund": 1990},
    }
    headers, body = wx.provider.signed_notification("REFUND.SUCCESS", resource, original_type="refund", summary="")
    with pytest.raises(MalformedCallback):
        wx.gateway.verify(headers, body)


def test_an_accepted_notification_is_answered_200_success_and_a_refused_one_400_with_kaquans_code(
    wx: WechatPayWorld,
) -> None:
    accepted = wx.gateway.acknowledge(None)
    assert (accepted.status_code, accepted.media_type) == (200, "application/json")
    assert json.loads(accepted.body) == {"code": "SUCCESS", "message": "成功"}
    refused = wx.gateway.acknowledge("invalid_signature")
    assert refused.status_code == 400  # not 2xx: WeChat Pay will send it again
    assert json.loads(refused.body) == {"code": "FAIL", "message": "invalid_signature"}


async def test_the_shop_refuses_a_forged_notification_so_the_platform_would_retry_it(wx: WechatPayWorld) -> None:
    headers, body = impostor(wx, platform_key=True).signed_notification(
        "TRANSACTION.SUCCESS", await paid_resource(wx), original_type="transaction", summary="支付成功"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(wx.shop_app)) as client:
        answer = await client.post(NOTIFY_URL, headers=headers, content=body)
    assert answer.status_code == 400
    assert answer.json() == {"code": "FAIL", "message": "invalid_signature"}
    assert isinstance(wx.shop.received[-1], DomainError)
