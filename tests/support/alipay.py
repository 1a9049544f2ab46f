"""Alipay test helpers: keys made once, a movable clock, and an Alipay simulator wired to a gateway and a shop.

The "shop" is a small ASGI app standing where kaquan's notify URL is: it hands each notification to the
gateway's `verify` and answers with its `acknowledge`, as the payments service will.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaquan.kit.config import Settings
from kaquan.kit.errors import DomainError
from kaquan.payments.alipay.gateway import AlipayConfig, AlipayGateway
from kaquan.payments.alipay.simulator import AlipaySimulator
from kaquan.payments.gateway import Ignored, Notification, PaymentRequest
from kaquan.payments.plugins import GatewaySetup

APP_ID = "2021004100000001"
SELLER_ID = "2088102100000001"
SIM_URL = "http://alipay.test/sim/alipay"
NOTIFY_URL = "http://shop.test/payments/alipay/notify"
RETURN_URL = "http://shop.test/orders/KQ1"
# 2024-05-20 10:00:00 in Beijing
START = datetime(2024, 5, 20, 2, 0, tzinfo=UTC)

# A throwaway 1024-bit key for fixed signature vectors (PKCS#1 PEM, as some of Alipay's tools write it).
FIXED_KEY_PEM = """-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDDMv0ALnC8HhdO4nFYoZxMrbvRua4ggCx2kLl8APIQH2AN4ZjV
Y7mE6QB0Au0FPAXrQS2z0N2RzdYISMTfL1GoGpO7Xa+wjQb+VLn/lG3t3/mj+Qvi
gTGEDUypBBegmqbkj5L2f6ha7PMNj1GJFp8XZ3SKweciupemqSr0le6OrwIDAQAB
AoGAMFiooSrfcThivX8IY9NjSvqc0k0S+6nDWXpu9m+lhKjAua9ukyun/2tWWWWA
HxPGw4XZM/g/aKV6pYKggEbQCkvEUqw2ntBfE/0N7tC35hc2lG+uSWhVmPT/A7Z/
29iQclloatB+Ytcs2hnPhJBMG6vfcAipTOr9LI+n2ZNckQECQQDwXHdbPJaticzI
wvm/xgp9v1syvWD2Ws4L5Weghl9joMX+RqycskuAKcnPrswaTOCIVhVBie+gDTR5
XMof50WxAkEAz+ZJ7l48NRDe1wGPYLmycYv8N3BNdKX9H+/jDXZ4N/cvcfbN+QWn
HtFRxkwVr7mckLfSG+lJfo+gSfqvRJlSXwJBALdnZu+oOLUsO6VJGTbaz3CKDfWW
iaERQr3TCxJy1eB4cfuHQ/jBF1kxCbu9/iFnXcDKJqf+r2iqCss8IULcvtECQCbh
CjJprRi/bu0Gfam5EIXrh99WQSXvZMb0NaHu5cyRjW3imeJYDEjXHFPZJrUWIRFv
TvupRPVGJtOu7dgGVEECQQDYXzG9Y1BDeXd6mJ7K5vHpXQhn/Mp1FWGO2G2YIh5x
T+/q6SfFhpvOXmWOIHLL99VE2SNq8VfsQg7MZ3nsoimx
-----END RSA PRIVATE KEY-----
"""


@cache
def key_pair(role: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per role ("alipay", "merchant", "stranger") for the whole test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Clock:
    at: datetime = START

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Shop:
    """kaquan's notify endpoint, reduced to verify + acknowledge; it keeps what it accepted, ignored and refused."""

    gateway: AlipayGateway | None = None
    accepted: list[Notification] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    async def notify(self, request: Request) -> Response:
        assert self.gateway is not None
        try:
            note = self.gateway.verify(dict(request.headers), await request.body())
        except DomainError as error:
            self.refused.append(error.code)
            answer = self.gateway.acknowledge(error.code)
        else:
            if isinstance(note, Ignored):
                self.ignored.append(note)
            else:
                self.accepted.append(note)
            answer = self.gateway.acknowledge(None)
        return Response(answer.body, answer.status_code, media_type=answer.media_type)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/payments/alipay/notify", self.notify, methods=["POST"])])


@dataclass
class AlipayWorld:
    clock: Clock
    simulator: AlipaySimulator
    gateway: AlipayGateway
    shop: Shop

    def gateway_with(self, **changes: object) -> AlipayGateway:
        """The same merchant's gateway, with some of its configuration changed (another key, app id…)."""
        config = self.gateway.config
        fields = {
            "app_id": config.app_id,
            "seller_id": config.seller_id,
            "private_key": config.private_key,
            "alipay_public_key": config.alipay_public_key,
            "gateway_url": config.gateway_url,
            "methods": config.methods,
        }
        fields.update(changes)
        return AlipayGateway(AlipayConfig(**fields), self.gateway._setup, now=self.clock.now)  # type: ignore[arg-type]


def setup_for(transport: httpx.AsyncBaseTransport | None, *, state_dir: Path = Path("var")) -> GatewaySetup:
    return GatewaySetup(settings=Settings(), public_url="http://shop.test", state_dir=state_dir, transport=transport)


def alipay_world(*, transport: Callable[[AlipaySimulator], httpx.AsyncBaseTransport] | None = None) -> AlipayWorld:
    """A simulator and a gateway that talks to it over ASGI, on a clock the test moves; notifications reach a shop."""
    clock = Clock()
    shop = Shop()
    simulator = AlipaySimulator(
        key=key_pair("alipay"),
        merchant_key=key_pair("merchant").public_key(),
        app_id=APP_ID,
        seller_id=SELLER_ID,
        base_url=SIM_URL,
        notify_transport=httpx.ASGITransport(shop.app()),
        now=clock.now,
    )
    wire = transport(simulator) if transport else httpx.ASGITransport(simulator.app, root_path="/sim/alipay")
    config = AlipayConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        private_key=key_pair("merchant"),
        alipay_public_key=simulator.public_key,
        gateway_url=f"{SIM_URL}/gateway.do",
    )
    gateway = AlipayGateway(config, setup_for(wire), now=clock.now)
    shop.gateway = gateway
    return AlipayWorld(clock=clock, simulator=simulator, gateway=gateway, shop=shop)


def payment(
    token: str = "KQP0001",  # noqa: S107 - a payment token, not a secret
    *,
    method: str = "qr",
    amount_minor: int = 1990,
    minutes: int = 15,
) -> PaymentRequest:
    return PaymentRequest(
        token=token,
        order_number="KQ1",
        subject="腾讯视频VIP月卡 x1",
        amount_minor=amount_minor,
        currency="CNY",
        method=method,
        expires_at=START + timedelta(minutes=minutes),
        notify_url=NOTIFY_URL,
        return_url=RETURN_URL,
    )


async def open_cashier(world: AlipayWorld, url: str) -> httpx.Response:
    """The buyer's browser following a page or WAP pay redirect to the simulated cashier."""
    transport = httpx.ASGITransport(world.simulator.app, root_path="/sim/alipay")
    async with httpx.AsyncClient(transport=transport) as browser:
        return await browser.get(url)
