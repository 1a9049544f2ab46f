"""The Stripe plugin: a merchant's account from `KAQUAN_STRIPE_*`, or a simulated Stripe for demos and tests."""

import json
import os
import secrets
from pathlib import Path

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaquan.payments import plugins
from kaquan.payments.plugins import GatewaySetup, Simulation
from kaquan.payments.stripe.gateway import DEFAULT_API_BASE, StripeConfig, StripeGateway, livemode_of
from kaquan.payments.stripe.simulator import StripeSimulator

NAME = "stripe"
MOUNT_PATH = f"/sim/{NAME}"
SIMULATOR_API_BASE = "http://stripe.simulator"  # any host: the simulator is reached through its ASGI transport


class StripeSettings(BaseSettings):
    """The merchant's Stripe account. Secrets come from the variable or from the file a `_FILE` variable names."""

    model_config = SettingsConfigDict(env_prefix="KAQUAN_STRIPE_", extra="ignore")

    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    api_base: str = DEFAULT_API_BASE
    account_id: str | None = Field(default=None, description="acct_…: events naming another account are refused")
    fee_rate_bp: int = Field(default=290, ge=0, le=10_000, description="Stripe's percentage fee, basis points")
    fee_fixed_minor: int = Field(default=30, ge=0, description="Stripe's fixed fee per charge, minor units")

    def config(self) -> StripeConfig | None:
        secret_key = _secret(self.secret_key, self.secret_key_file)
        webhook_secret = _secret(self.webhook_secret, self.webhook_secret_file)
        if secret_key is None and webhook_secret is None:
            return None
        if secret_key is None or webhook_secret is None:
            raise ValueError(
                "Stripe needs both KAQUAN_STRIPE_SECRET_KEY(_FILE) and KAQUAN_STRIPE_WEBHOOK_SECRET(_FILE)"
            )
        livemode_of(secret_key)  # refuses a key that is not one
        return StripeConfig(
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            api_base=self.api_base,
            account_id=self.account_id,
            fee_rate_bp=self.fee_rate_bp,
            fee_fixed_minor=self.fee_fixed_minor,
        )


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None and value.get_secret_value().strip():
        return value.get_secret_value().strip()
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return None


def simulator_keys(state_dir: Path) -> tuple[str, str]:
    """The simulated account's test secret key and webhook secret, made once and kept (mode 0600)."""
    folder = state_dir / NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keys.json"
    if not path.exists():
        keys = {"secret_key": f"sk_test_{secrets.token_hex(24)}", "webhook_secret": f"whsec_{secrets.token_hex(24)}"}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(keys, out)
    stored = json.loads(path.read_text(encoding="utf-8"))
    return str(stored["secret_key"]), str(stored["webhook_secret"])


class StripePlugin:
    name = NAME
    title = "Stripe 银行卡支付"

    def configured(self, setup: GatewaySetup) -> StripeGateway | None:
        config = StripeSettings().config()
        if config is None:
            return None
        return StripeGateway(config, plugins.http_client(setup, config.api_base))

    def simulated(self, setup: GatewaySetup) -> Simulation:
        secret_key, webhook_secret = simulator_keys(setup.state_dir)
        public_url = setup.public_url.rstrip("/")
        simulator = StripeSimulator(
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            webhook_url=f"{public_url}/payments/{NAME}/notify",
            base_url=f"{public_url}{MOUNT_PATH}",
            notify_transport=setup.notify_transport,
        )
        if setup.transport is None:
            api_base = SIMULATOR_API_BASE
            http = httpx.AsyncClient(base_url=api_base, transport=httpx.ASGITransport(simulator.app), timeout=10.0)
        else:  # the given transport reaches a server that mounts the simulator at MOUNT_PATH
            api_base = f"{public_url}{MOUNT_PATH}"
            http = plugins.http_client(setup, api_base)
        config = StripeConfig(secret_key=secret_key, webhook_secret=webhook_secret, api_base=api_base)
        return Simulation(gateway=StripeGateway(config, http), provider=simulator, mount_path=MOUNT_PATH)


plugin = StripePlugin()
