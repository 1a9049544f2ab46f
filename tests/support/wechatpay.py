"""WeChat Pay test helpers: a simulated platform, the shop's notify endpoint in front of the gateway, requests.

`WechatPayWorld` is what a test talks to: the simulation built by the plugin
(keys generated once per test session, since RSA key generation is the slow
part), and `shop`, a stand-in for kaquan's notify route that verifies each
notification with the gateway and answers with the gateway's acknowledgement.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.kit.errors import DomainError
from kaquan.payments.gateway import Notification, PaymentRequest, RefundRequest
from kaquan.payments.plugins import GatewaySetup
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.gateway import WechatPayGateway
from kaquan.payments.wechatpay.plugin import SimulationKeys, build_simulation
from kaquan.payments.wechatpay.simulator import WechatPaySimulator

PUBLIC_URL = "https://shop.example"
NOTIFY_URL = f"{PUBLIC_URL}/payments/wechatpay/notify"

# A fixed RSA key for protocol vectors: test-only, never a merchant's.
FIXED_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDGrjTrK0ctg7AE
n4S+vZDJU7mECghlj73xso1aU7hIwVbarN2Q/yHxbcQwWp4jZB4mgGmONC2uPg6e
nC42IeLf68WKInVg/u4yt6ngzoWNgIX6O1bPMI7lvtAncqsCrAkF6teWUpZxgWy3
w9gsAiJCVy1xkt/ZOwMS7DuPDIDNbNs1k7QkkD/4VNBYdaHV9xyhu4xfqhBAswOJ
2VtV9yhMIqGvJUzkHgj++MupeC6E+TqqgUquyaNjnxx6lkpppWTjmsiG9KcEcjm8
aK1zbG0nd0KVz2eogmgnESlHwObh/xqSvoFU4SRrgvxN6tDibeUYHBiWDFSL4jeb
+2+vbe+7AgMBAAECggEAH83lRLwR0dRhyeurOUlpMwFHEj705yUid91oSUxblLH2
cFz5vutIiLhUjpUC+ZFeTjWCMDRkF59xgaxorVuxUL0SSzGG7rcAdHf4JreIo4Uu
bUcwd0xDo71u3tG5VF0ruJnGVxbzZEoemDAum6TfzRTdfm/Pi5upu067ngOXXsrE
cosAQMxGSsko3SCvWe0euyYT9jYxPWNvizyFnFI6geusmkt79QxvuagxqFcJ7e+l
5zXJmNUpHg3sHbGNz4hkubCejZiJ/dYGFXxMSUL8No3VAhgU2/MrYzkJQurODLnq
MzgNAL6xLriQuI2fMxyrB4MIgJf40VQEC4788wp1aQKBgQD+xwj3DrUJ2PbKTOE4
mcH1J/Se8w0wUtXABi3b40AYpSW7NDp83IzYFlixyDrYLGLrWwhE6EOQtKreIia6
v+kpl9Po+uFg8/7nV4M6tbQUBT+LD41gr9IgDIgQechO65pIuSnLYd8bxd/mQ5Li
BQFoqQfLgGRCxTojwWKydD2CnwKBgQDHokNRvxhDP8+Mtk5j8xBQ1I6B840mHoFR
syeDCfx22Bq7JKeODu1KClOLdR9RAK1yWuA/Roq15vrT8DL1g6nTiYeRoHLXasLs
NgkOXNBMmjNV0jf/y+kUumf/A0/bAX9e6fLMhqWNbpF1CLNAOi2yVU809dMtcL3b
++eFOmw5ZQKBgFKCUrzv3mFaClJpo2aZJN8oGWiAffzwVpjhZ2iWp+NTWGzP9UEK
i/JPClpI5gWsGjzuNjdaoMb0O4HEvZYtIG1/5fjFhsfHPP3esXkJ70+sg2+dkcOG
LR6D8Gylg+FLG6QBky9yerab1m7T43We+V3Tn9qfsdiN1s5NipEQY/sxAoGBAIGt
+iUECXLF5MD3O/zZS+P174yi9TGp5z93LVeGCSX6Q4MF0IILWEEcbCDPOESaOBFs
zvbLkBeRr6Y1BiVOHed4E0SaAX/FrlFa2I8n43efQ3GgWRglEYeRfzS8pgcR9fdl
6X7KiIhTJtHrkOVL5ZtOp2EzvrZp4isge8ijpuGxAoGAKPY+0zWucZZ1K7XLITxw
WI64lAAj1J4vF2+jXNPoVUKSwftoaFu2pT6oRVCGSzeRavsQKfl5ZS6lb4/OjOJ+
J5GprGxXjz8oOSAptlQM8v/tyosxn6fP7UnTu1CaDHm9Il0kKnVPmZLSvt/2MC9b
l3Pycnk6T8ovNxo3iEZ3cZ8=
-----END PRIVATE KEY-----
"""


@cache
def session_keys() -> SimulationKeys:
    return SimulationKeys.generate()


@cache
def stranger_keys() -> SimulationKeys:
    """Another platform and merchant: signatures with these must never pass."""
    return SimulationKeys.generate()


def platform_certificate(key: rsa.RSAPrivateKey, *, serial: int) -> bytes:
    """A PEM platform certificate for `key`, self-signed (what WeChat Pay's older certificate mode hands out)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1825))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class Shop:
    """kaquan's notify endpoint reduced to the gateway's part: verify, then acknowledge."""

    gateway: WechatPayGateway | None = None
    received: list[Notification | DomainError] = field(default_factory=list)

    async def notify(self, request: Request) -> Response:
        assert self.gateway is not None
        try:
            note = self.gateway.verify(dict(request.headers), await request.body())
        except DomainError as refused:
            self.received.append(refused)
            answer = self.gateway.acknowledge(refused.code)
        else:
            self.received.append(note)
            answer = self.gateway.acknowledge(None)
        return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)

    @property
    def notifications(self) -> list[Notification]:
        return [item for item in self.received if isinstance(item, Notification)]


@dataclass
class WechatPayWorld:
    gateway: WechatPayGateway
    provider: WechatPaySimulator
    shop: Shop
    shop_app: Starlette  # the shop's notify route, to post to it as anyone

    def request(
        self,
        method: str = "native",
        *,
        token: str = "T3kq8mXr9_Lp-2sVb7Nc4dEf",  # noqa: S107 - a payment token, not a password
        amount_minor: int = 1990,
        currency: str = "CNY",
        hold: timedelta = timedelta(minutes=15),
    ) -> PaymentRequest:
        return PaymentRequest(
            token=token,
            order_number="KQ20261205000123",
            subject="腾讯视频VIP月卡 x1",
            amount_minor=amount_minor,
            currency=currency,
            method=method,
            expires_at=clock.now() + hold,
            notify_url=NOTIFY_URL,
            return_url=f"{PUBLIC_URL}/orders/KQ20261205000123",
            client_ip="203.0.113.7",
            payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        )

    def refund_request(
        self, token: str, refund_no: str, amount_minor: int, *, total_minor: int = 1990, currency: str = "CNY"
    ) -> RefundRequest:
        return RefundRequest(
            payment_token=token,
            txn_id=None,
            refund_no=refund_no,
            amount_minor=amount_minor,
            total_minor=total_minor,
            currency=currency,
            reason="买家申请退款",
            notify_url=NOTIFY_URL,
        )

    async def paid(self, method: str = "native", **request: object) -> PaymentRequest:
        """A trade created through the gateway and paid by the buyer (notification delivered)."""
        asked = self.request(method, **request)  # type: ignore[arg-type]
        await self.gateway.create(asked)
        await self.provider.pay(asked.token)
        return asked


def world(tmp_path: Path, *, transport: httpx.AsyncBaseTransport | None = None) -> WechatPayWorld:
    shop = Shop()
    receiver = Starlette(routes=[Route("/payments/wechatpay/notify", shop.notify, methods=["POST"])])
    setup = GatewaySetup(
        settings=Settings(var_dir=tmp_path),
        public_url=PUBLIC_URL,
        state_dir=tmp_path,
        transport=transport,
        notify_transport=httpx.ASGITransport(receiver),
    )
    simulation = build_simulation(setup, session_keys())
    assert isinstance(simulation.gateway, WechatPayGateway)
    assert isinstance(simulation.provider, WechatPaySimulator)
    shop.gateway = simulation.gateway
    return WechatPayWorld(simulation.gateway, simulation.provider, shop, receiver)


def today() -> date:
    return clock.now().astimezone(protocol.BEIJING).date()
