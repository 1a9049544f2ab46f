"""The Alipay plugin: the merchant's application from `KAQUAN_ALIPAY_*`, or a simulated Alipay for demos and tests."""

import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaquan.payments import plugins
from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.gateway import METHODS, NAME, AlipayConfig, AlipayGateway
from kaquan.payments.alipay.simulator import AlipaySimulator
from kaquan.payments.gateway import PayAction, PaymentRequest

MOUNT = f"/sim/{NAME}"


class AlipaySettings(BaseSettings):
    """The merchant's Alipay application. Keys are read from the files named here, never from the environment."""

    model_config = SettingsConfigDict(env_prefix="KAQUAN_ALIPAY_", extra="ignore")

    app_id: str | None = Field(default=None, description="the application's APPID on open.alipay.com")
    seller_id: str | None = Field(default=None, description="the merchant's PID (2088…), the seller in notifications")
    private_key_file: Path | None = Field(default=None, description="the application's private key: PEM or bare base64")
    public_key_file: Path | None = Field(
        default=None, description="Alipay's public key (支付宝公钥): PEM or bare base64"
    )
    gateway_url: str = protocol.DEFAULT_GATEWAY_URL
    fee_rate_bp: int = Field(default=60, ge=0, le=10_000, description="the contracted fee in basis points")
    methods: str = Field(default=",".join(METHODS), description="comma-separated, among page, wap, qr")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: str) -> str:
        chosen = [part.strip() for part in value.split(",") if part.strip()]
        if not chosen or set(chosen) - set(METHODS):
            raise ValueError(f"Alipay methods are among {', '.join(METHODS)}")
        return ",".join(chosen)

    def config(self) -> AlipayConfig | None:
        """The application, when all of it is configured; a half configuration fails loudly."""
        given = [self.app_id, self.seller_id, self.private_key_file, self.public_key_file]
        if not any(given):
            return None
        if not all(given):
            raise ValueError(
                "Alipay needs KAQUAN_ALIPAY_APP_ID, KAQUAN_ALIPAY_SELLER_ID, "
                "KAQUAN_ALIPAY_PRIVATE_KEY_FILE and KAQUAN_ALIPAY_PUBLIC_KEY_FILE together"
            )
        assert self.app_id and self.seller_id and self.private_key_file and self.public_key_file  # noqa: S101
        return AlipayConfig(
            app_id=self.app_id,
            seller_id=self.seller_id,
            private_key=protocol.load_private_key(self.private_key_file.read_bytes()),
            alipay_public_key=protocol.load_public_key(self.public_key_file.read_bytes()),
            gateway_url=self.gateway_url,
            fee_rate_bp=self.fee_rate_bp,
            methods=tuple(self.methods.split(",")),
        )


@dataclass(frozen=True)
class SimulatedAccount:
    """The simulator's key pair, the merchant's key pair and the ids between them, kept between runs."""

    alipay_key: rsa.RSAPrivateKey
    merchant_key: rsa.RSAPrivateKey
    app_id: str
    seller_id: str


def simulated_account(directory: Path) -> SimulatedAccount:
    """Load the simulated account from `directory`, or make one there (files 0600, directory 0700)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ids_file = directory / "account.json"
    if not ids_file.exists():
        ids = {"app_id": f"2021{secrets.randbelow(10**12):012d}", "seller_id": f"2088{secrets.randbelow(10**12):012d}"}
        _write_private(ids_file, json.dumps(ids).encode())
    ids = json.loads(ids_file.read_text())
    return SimulatedAccount(
        alipay_key=_key_file(directory / "alipay_private_key.pem"),
        merchant_key=_key_file(directory / "app_private_key.pem"),
        app_id=ids["app_id"],
        seller_id=ids["seller_id"],
    )


def _key_file(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
    return protocol.load_private_key(path.read_bytes())


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


class BuyerOpensCashier(AlipayGateway):
    """The simulated shop's gateway: after a page or WAP create, the buyer's browser opens the cashier at once.

    A page-pay trade exists at Alipay only once the buyer's browser arrives with the signed URL; in a
    simulation nobody's browser may follow the redirect, so this opens it (through the simulator, which
    checks the URL's signature like any other request) and the trade can be paid by `pay()` right away.
    """

    async def create(self, request: PaymentRequest) -> PayAction:
        action = await super().create(request)
        if action.kind == "redirect" and action.url is not None:
            async with plugins.http_client(self._setup, self._origin) as browser:
                opened = await browser.get(action.url)
            if opened.status_code != 200:
                raise RuntimeError(f"the simulated cashier refused the pay URL: HTTP {opened.status_code}")
        return action


class AlipayPlugin:
    name = NAME
    title = "支付宝"

    def configured(self, setup: plugins.GatewaySetup) -> AlipayGateway | None:
        config = AlipaySettings().config()
        return None if config is None else AlipayGateway(config, setup)

    def simulated(self, setup: plugins.GatewaySetup) -> plugins.Simulation:
        account = simulated_account(setup.state_dir / NAME)
        base_url = setup.public_url.rstrip("/") + MOUNT
        simulator = AlipaySimulator(
            key=account.alipay_key,
            merchant_key=account.merchant_key.public_key(),
            app_id=account.app_id,
            seller_id=account.seller_id,
            base_url=base_url,
            notify_transport=setup.notify_transport,
        )
        transport = setup.transport or httpx.ASGITransport(simulator.app, root_path=MOUNT)
        config = AlipayConfig(
            app_id=account.app_id,
            seller_id=account.seller_id,
            private_key=account.merchant_key,
            alipay_public_key=simulator.public_key,
            gateway_url=f"{base_url}/gateway.do",
        )
        gateway = BuyerOpensCashier(config, replace(setup, transport=transport))
        return plugins.Simulation(gateway=gateway, provider=simulator, mount_path=MOUNT)


plugin = AlipayPlugin()
