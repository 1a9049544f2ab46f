"""The Alipay plugin: a merchant's application from the environment, or a simulated Alipay that survives restarts."""

import base64
import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from tests.support.alipay import Shop, key_pair, payment, setup_for

from kaquan.payments.alipay.gateway import AlipayGateway
from kaquan.payments.alipay.plugin import plugin
from kaquan.payments.alipay.simulator import AlipaySimulator


@pytest.fixture(autouse=True)
def no_alipay_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APP_ID", "SELLER_ID", "PRIVATE_KEY_FILE", "PUBLIC_KEY_FILE", "GATEWAY_URL", "FEE_RATE_BP", "METHODS"):
        monkeypatch.delenv(f"KAQUAN_ALIPAY_{name}", raising=False)


def key_files(directory: Path) -> tuple[Path, Path]:
    """The merchant's private key as bare PKCS#8 base64 and Alipay's public key as bare X.509 base64 (the console's)."""
    private = key_pair("merchant").private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = (
        key_pair("alipay")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (directory / "app_private_key.txt").write_text(base64.b64encode(private).decode())
    (directory / "alipay_public_key.txt").write_text(base64.b64encode(public).decode())
    return directory / "app_private_key.txt", directory / "alipay_public_key.txt"


def test_without_configuration_there_is_no_alipay(tmp_path: Path) -> None:
    assert plugin.configured(setup_for(None, state_dir=tmp_path)) is None
    assert (plugin.name, plugin.title) == ("alipay", "支付宝")


def test_the_merchants_application_comes_from_kaquan_alipay_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = key_files(tmp_path)
    monkeypatch.setenv("KAQUAN_ALIPAY_APP_ID", "2021004100000001")
    monkeypatch.setenv("KAQUAN_ALIPAY_SELLER_ID", "2088102100000001")
    monkeypatch.setenv("KAQUAN_ALIPAY_PRIVATE_KEY_FILE", str(private))
    monkeypatch.setenv("KAQUAN_ALIPAY_PUBLIC_KEY_FILE", str(public))
    monkeypatch.setenv("KAQUAN_ALIPAY_FEE_RATE_BP", "38")
    monkeypatch.setenv("KAQUAN_ALIPAY_METHODS", "qr, page")

    gateway = plugin.configured(setup_for(None, state_dir=tmp_path))

    assert isinstance(gateway, AlipayGateway)
    assert (gateway.name, gateway.methods, gateway.fee_rate_bp) == ("alipay", ("qr", "page"), 38)
    assert gateway.config.gateway_url == "https://openapi.alipay.com/gateway.do"
    assert gateway.config.private_key.private_numbers() == key_pair("merchant").private_numbers()
    assert "PRIVATE" not in repr(gateway.config) and "private_numbers" not in repr(gateway.config)


def test_half_a_configuration_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAQUAN_ALIPAY_APP_ID", "2021004100000001")
    with pytest.raises(ValueError, match="together"):
        plugin.configured(setup_for(None, state_dir=tmp_path))


def test_an_unknown_method_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAQUAN_ALIPAY_METHODS", "page,barcode")
    with pytest.raises(ValueError, match="among"):
        plugin.configured(setup_for(None, state_dir=tmp_path))


def test_the_simulated_account_is_kept_private_and_the_same_across_restarts(tmp_path: Path) -> None:
    first = plugin.simulated(setup_for(None, state_dir=tmp_path))
    again = plugin.simulated(setup_for(None, state_dir=tmp_path))

    files = sorted((tmp_path / "alipay").iterdir())
    assert [path.name for path in files] == ["account.json", "alipay_private_key.pem", "app_private_key.pem"]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert stat.S_IMODE((tmp_path / "alipay").stat().st_mode) == 0o700
    assert isinstance(first.provider, AlipaySimulator) and isinstance(again.provider, AlipaySimulator)
    assert first.provider.public_key.public_numbers() == again.provider.public_key.public_numbers()
    assert first.mount_path == "/sim/alipay"


@pytest.mark.parametrize("method", ["page", "wap", "qr"])
async def test_a_simulation_takes_a_payment_end_to_end_on_its_own(tmp_path: Path, method: str) -> None:
    shop = Shop()
    setup = setup_for(None, state_dir=tmp_path)
    setup = type(setup)(**{**setup.__dict__, "notify_transport": httpx.ASGITransport(shop.app())})
    simulation = plugin.simulated(setup)
    assert isinstance(simulation.gateway, AlipayGateway)
    shop.gateway = simulation.gateway

    action = await simulation.gateway.create(payment(method=method, minutes=10**8))
    await simulation.provider.pay("KQP0001")

    assert action.kind == ("qr" if method == "qr" else "redirect")
    assert [(note.kind, note.amount_minor) for note in shop.accepted] == [("paid", 1990)]
    assert (await simulation.gateway.query("KQP0001")).status == "paid"


async def test_a_simulation_mounted_in_a_demo_server_answers_under_sim_alipay(tmp_path: Path) -> None:
    shop = Shop()
    demo = Starlette(routes=[Route("/payments/alipay/notify", shop.notify, methods=["POST"])])
    through_demo = httpx.ASGITransport(demo)
    setup = setup_for(through_demo, state_dir=tmp_path)
    setup = type(setup)(**{**setup.__dict__, "notify_transport": through_demo})
    simulation = plugin.simulated(setup)
    demo.router.routes.append(Mount(simulation.mount_path, app=simulation.provider.app))
    assert isinstance(simulation.gateway, AlipayGateway)
    shop.gateway = simulation.gateway

    action = await simulation.gateway.create(payment(method="page", minutes=10**8))
    assert action.url is not None and action.url.startswith("http://shop.test/sim/alipay/gateway.do?")
    async with httpx.AsyncClient(transport=through_demo) as browser:
        cashier = await browser.get(action.url)
    assert "确认付款 ¥19.90" in cashier.text
    assert 'action="/sim/alipay/cashier/' in cashier.text
    await simulation.provider.pay("KQP0001")
    assert [note.kind for note in shop.accepted] == ["paid"]
