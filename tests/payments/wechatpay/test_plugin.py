"""The WeChat Pay plugin: the merchant's gateway from KAQUAN_WECHATPAY_*, and the simulation with kept keys."""

import logging
import stat
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.support.notifications import read
from tests.support.wechatpay import platform_certificate, session_keys

from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.payments.gateway import Gateway, PaymentRequest
from kaquan.payments.plugins import GatewayPlugin, GatewaySetup
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.gateway import WechatPayGateway
from kaquan.payments.wechatpay.plugin import WechatPayMisconfigured, load_or_create_keys, plugin

PREFIX = "KAQUAN_WECHATPAY_"
APIV3 = "Vq3n8Hk2Lr7Tz4Wm9Px5Cb6Ny1Jd0FsQ"


def setup_for(tmp_path: Path) -> GatewaySetup:
    return GatewaySetup(settings=Settings(var_dir=tmp_path), public_url="https://shop.example", state_dir=tmp_path)


@pytest.fixture
def merchant_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    keys = session_keys()
    (tmp_path / "apiclient_key.pem").write_bytes(protocol.private_pem(keys.merchant_key))
    (tmp_path / "pub_key.pem").write_bytes(protocol.public_pem(keys.platform_key.public_key()))
    env = {
        "MCHID": "1900000109",
        "APPID": "wxd678efh567hg6787",
        "APIV3_KEY": APIV3,
        "PRIVATE_KEY_FILE": str(tmp_path / "apiclient_key.pem"),
        "CERT_SERIAL_NO": "444F4864EA9B34415000000000000000000000000",
        "PLATFORM_PUBLIC_KEY_FILE": str(tmp_path / "pub_key.pem"),
        "PLATFORM_PUBLIC_KEY_ID": "PUB_KEY_ID_0114232134912410000000000000",
    }
    for name, value in env.items():
        monkeypatch.setenv(PREFIX + name, value)
    return env


def test_the_plugin_is_named_and_titled_for_buyers() -> None:
    checked: GatewayPlugin = plugin
    assert (checked.name, checked.title) == ("wechatpay", "微信支付")


def test_without_a_merchant_id_wechat_pay_is_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PREFIX + "MCHID", raising=False)
    assert plugin.configured(setup_for(tmp_path)) is None


def test_a_configured_merchant_gets_a_gateway_with_its_methods_fee_and_platform_key(
    tmp_path: Path, merchant_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PREFIX + "METHODS", "native, jsapi")
    monkeypatch.setenv(PREFIX + "FEE_RATE_BP", "38")
    gateway = plugin.configured(setup_for(tmp_path))
    assert isinstance(gateway, WechatPayGateway)
    checked: Gateway = gateway
    assert (checked.name, checked.methods, checked.fee_rate_bp) == ("wechatpay", ("native", "jsapi"), 38)
    assert gateway.merchant.apiv3_key == APIV3.encode()
    assert set(gateway.merchant.platform_keys) == {"PUB_KEY_ID_0114232134912410000000000000"}
    assert APIV3 not in repr(gateway.merchant) and "PRIVATE" not in repr(gateway.merchant)


def test_the_apiv3_key_can_come_from_a_file(
    tmp_path: Path, merchant_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PREFIX + "APIV3_KEY")
    (tmp_path / "apiv3").write_text(APIV3 + "\n")
    monkeypatch.setenv(PREFIX + "APIV3_KEY_FILE", str(tmp_path / "apiv3"))
    gateway = plugin.configured(setup_for(tmp_path))
    assert isinstance(gateway, WechatPayGateway) and gateway.merchant.apiv3_key == APIV3.encode()


def test_a_platform_certificate_is_named_by_its_own_serial_next_to_the_public_key(
    tmp_path: Path, merchant_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = platform_certificate(session_keys().platform_key, serial=0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
    (tmp_path / "wechatpay_cert.pem").write_bytes(pem)
    monkeypatch.setenv(PREFIX + "PLATFORM_CERT_FILE", str(tmp_path / "wechatpay_cert.pem"))
    gateway = plugin.configured(setup_for(tmp_path))
    assert isinstance(gateway, WechatPayGateway)
    assert set(gateway.merchant.platform_keys) == {
        "PUB_KEY_ID_0114232134912410000000000000",
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    }
    monkeypatch.setenv(PREFIX + "PLATFORM_CERT_SERIAL", "0000")
    with pytest.raises(WechatPayMisconfigured, match="5157F09E"):
        plugin.configured(setup_for(tmp_path))


@pytest.mark.parametrize("missing", ["APPID", "PRIVATE_KEY_FILE", "CERT_SERIAL_NO", "PLATFORM_PUBLIC_KEY_ID"])
def test_half_a_configuration_refuses_to_start_naming_what_is_missing_and_no_secret(
    tmp_path: Path, merchant_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(PREFIX + missing)
    with pytest.raises(WechatPayMisconfigured, match=PREFIX + missing) as refused:
        plugin.configured(setup_for(tmp_path))
    assert APIV3 not in str(refused.value)


def test_an_apiv3_key_that_is_not_32_characters_is_refused(
    tmp_path: Path, merchant_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PREFIX + "APIV3_KEY", "short")
    with pytest.raises(WechatPayMisconfigured, match="32"):
        plugin.configured(setup_for(tmp_path))


async def test_the_simulation_keeps_its_keys_private_and_the_same_across_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = plugin.simulated(setup_for(tmp_path))
    assert first.mount_path == "/sim/wechatpay"
    files = sorted((tmp_path / "wechatpay").iterdir())
    assert [path.name for path in files] == ["apiv3_key", "merchant_key.pem", "platform_key.pem"]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert stat.S_IMODE((tmp_path / "wechatpay").stat().st_mode) == 0o700
    again = load_or_create_keys(tmp_path / "wechatpay")
    kept = (tmp_path / "wechatpay" / "apiv3_key").read_bytes()
    assert again.apiv3_key == kept
    assert kept.decode() not in caplog.text


async def test_the_plugins_simulation_pays_end_to_end_with_no_network(tmp_path: Path) -> None:
    bodies: list[bytes] = []

    async def notify(request: Request) -> Response:
        bodies.append(await request.body())
        return Response('{"code":"SUCCESS","message":"成功"}'.encode(), media_type="application/json")

    shop = Starlette(routes=[Route("/payments/wechatpay/notify", notify, methods=["POST"])])
    simulation = plugin.simulated(replace(setup_for(tmp_path), notify_transport=httpx.ASGITransport(shop)))
    asked = PaymentRequest(
        token="T3kq8mXr9_Lp-2sVb7Nc4dEf",
        order_number="KQ1",
        subject="腾讯视频VIP月卡 x1",
        amount_minor=1990,
        currency="CNY",
        method="native",
        expires_at=clock.now() + timedelta(minutes=15),
        notify_url="https://shop.example/payments/wechatpay/notify",
        return_url="https://shop.example/orders/KQ1",
    )
    action = await simulation.gateway.create(asked)
    assert action.qr is not None and action.qr.startswith("https://shop.example/sim/wechatpay/qr/")
    sent = await simulation.provider.pay(asked.token)
    assert sent is not None and sent.status_code == 200 and bodies == [sent.body]
    note = read(simulation.gateway, sent.headers, sent.body)
    assert (note.kind, note.payment_token, note.amount_minor) == ("paid", asked.token, 1990)
    assert (await simulation.gateway.query(asked.token)).status == "paid"
