"""The Stripe plugin: the merchant's account from KAQUAN_STRIPE_*, a simulated Stripe with keys kept between runs."""

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.support.notifications import read
from tests.support.stripe_world import payment

from kaquan.kit.config import Settings
from kaquan.payments.plugins import GatewaySetup
from kaquan.payments.stripe.gateway import StripeGateway
from kaquan.payments.stripe.plugin import plugin, simulator_keys
from kaquan.payments.stripe.simulator import StripeSimulator


def setup_in(state_dir: Path, **kwargs: object) -> GatewaySetup:
    return GatewaySetup(settings=Settings(), public_url="http://shop.test", state_dir=state_dir, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_stripe_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRET_KEY", "SECRET_KEY_FILE", "WEBHOOK_SECRET", "WEBHOOK_SECRET_FILE", "API_BASE", "ACCOUNT_ID"):
        monkeypatch.delenv(f"KAQUAN_STRIPE_{name}", raising=False)


def test_the_plugin_is_named_stripe_and_titled_for_chinese_buyers() -> None:
    assert plugin.name == "stripe"
    assert "Stripe" in plugin.title


def test_without_a_secret_key_stripe_is_not_configured(tmp_path: Path) -> None:
    assert plugin.configured(setup_in(tmp_path)) is None


def test_the_secret_key_and_webhook_secret_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAQUAN_STRIPE_SECRET_KEY", "sk_live_abc")
    monkeypatch.setenv("KAQUAN_STRIPE_WEBHOOK_SECRET", "whsec_abc")
    monkeypatch.setenv("KAQUAN_STRIPE_FEE_RATE_BP", "340")
    gateway = plugin.configured(setup_in(tmp_path))
    assert isinstance(gateway, StripeGateway)
    assert (gateway.name, gateway.methods, gateway.fee_rate_bp, gateway.fee_fixed_minor) == (
        "stripe",
        ("checkout",),
        340,
        30,
    )
    assert gateway._config.livemode is True
    assert "sk_live_abc" not in repr(gateway._config) and "whsec_abc" not in repr(gateway._config)


def test_secrets_can_come_from_files_the_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text("sk_test_from_file\n")
    (tmp_path / "whsec").write_text("whsec_from_file\n")
    monkeypatch.setenv("KAQUAN_STRIPE_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("KAQUAN_STRIPE_WEBHOOK_SECRET_FILE", str(tmp_path / "whsec"))
    gateway = plugin.configured(setup_in(tmp_path))
    assert isinstance(gateway, StripeGateway)
    assert (gateway._config.secret_key, gateway._config.webhook_secret) == ("sk_test_from_file", "whsec_from_file")
    assert gateway._config.livemode is False


@pytest.mark.parametrize(
    "environment",
    [
        {"KAQUAN_STRIPE_SECRET_KEY": "sk_test_abc"},
        {"KAQUAN_STRIPE_WEBHOOK_SECRET": "whsec_abc"},
        {"KAQUAN_STRIPE_SECRET_KEY": "pk_test_publishable", "KAQUAN_STRIPE_WEBHOOK_SECRET": "whsec_abc"},
    ],
    ids=["no-webhook-secret", "no-secret-key", "publishable-key"],
)
def test_half_a_configuration_fails_loudly_instead_of_silently_taking_no_money(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        plugin.configured(setup_in(tmp_path))


def test_the_simulators_keys_are_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = simulator_keys(tmp_path)
    assert first[0].startswith("sk_test_") and first[1].startswith("whsec_")
    assert simulator_keys(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "stripe" / "keys.json").stat().st_mode) == 0o600


async def test_the_simulated_gateway_takes_a_payment_through_the_simulator_mounted_at_sim_stripe(
    tmp_path: Path,
) -> None:
    received: list[httpx.Request] = []

    def kaquan(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, json={"received": True})

    simulation = plugin.simulated(setup_in(tmp_path, notify_transport=httpx.MockTransport(kaquan)))
    assert simulation.mount_path == "/sim/stripe"
    assert isinstance(simulation.provider, StripeSimulator)
    action = await simulation.gateway.create(payment(at=datetime.now(UTC), hold=timedelta(hours=1)))
    assert action.url is not None and action.url.startswith("http://shop.test/sim/stripe/c/pay/cs_test_")
    sent = await simulation.provider.pay("pay_tok_1")
    assert sent is not None
    assert received[0].url == "http://shop.test/payments/stripe/notify"
    assert read(simulation.gateway, sent.headers, sent.body).kind == "paid"
    assert plugin.simulated(setup_in(tmp_path)).provider is not simulation.provider  # state is per simulator
