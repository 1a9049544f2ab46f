"""A Stripe world for tests: the simulator, a gateway wired to it, kaquan's webhook endpoint, one clock for all."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kaquan.payments.gateway import PaymentRequest, RefundRequest
from kaquan.payments.plugins import SentNotification
from kaquan.payments.stripe import protocol
from kaquan.payments.stripe.gateway import StripeConfig, StripeGateway
from kaquan.payments.stripe.simulator import StripeSimulator

SECRET_KEY = "sk_test_51kaquanTESTsecretKEY000000000000"
WEBHOOK_SECRET = "whsec_kaquanTESTwebhookSECRET0000000000"
PUBLIC_URL = "http://shop.test"
API_BASE = "http://stripe.test"
TOKEN = "pay_tok_1"  # the payment token most tests pay


@dataclass
class MovableClock:
    at: datetime = field(default_factory=lambda: datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class StripeWorld:
    clock: MovableClock
    simulator: StripeSimulator
    gateway: StripeGateway
    webhooks: list[httpx.Request]  # what reached kaquan's notify endpoint

    async def webhooks_of(self, kind: str) -> list[SentNotification]:
        """Every webhook of one event type the simulator delivered, once those under way arrived."""
        await self.simulator.drain()
        return [sent for sent in self.simulator.sent() if json.loads(sent.body)["type"] == kind]

    def stamp(self) -> int:
        return int(self.clock.now().timestamp())

    def gateway_after_restart(self, **config: Any) -> StripeGateway:
        """A new process's gateway: same account and simulator, nothing remembered."""
        return stripe_gateway(self.simulator, self.clock, **config)


def stripe_gateway(simulator: StripeSimulator, clock: MovableClock, **config: Any) -> StripeGateway:
    settings = {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET, "api_base": API_BASE, **config}
    http = httpx.AsyncClient(base_url=API_BASE, transport=httpx.ASGITransport(simulator.app))
    return StripeGateway(StripeConfig(**settings), http, now=clock.now)


def stripe_world(*, secret_key: str = SECRET_KEY, **config: Any) -> StripeWorld:
    clock = MovableClock()
    webhooks: list[httpx.Request] = []

    def kaquan_endpoint(request: httpx.Request) -> httpx.Response:
        webhooks.append(request)
        return httpx.Response(200, json={"received": True})

    simulator = StripeSimulator(
        secret_key=secret_key,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=f"{PUBLIC_URL}/payments/stripe/notify",
        base_url=f"{PUBLIC_URL}/sim/stripe",
        notify_transport=httpx.MockTransport(kaquan_endpoint),
        now=clock.now,
    )
    return StripeWorld(clock, simulator, stripe_gateway(simulator, clock, **config), webhooks)


def payment(
    payment_token: str = TOKEN,
    *,
    amount_minor: int = 1990,
    currency: str = "USD",
    at: datetime,
    hold: timedelta = timedelta(minutes=45),
    method: str = "checkout",
) -> PaymentRequest:
    return PaymentRequest(
        token=payment_token,
        order_number=f"O-{payment_token}",
        subject="腾讯视频VIP月卡 x1",
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        expires_at=at + hold,
        notify_url=f"{PUBLIC_URL}/payments/stripe/notify",
        return_url=f"{PUBLIC_URL}/orders/O-{payment_token}",
    )


def refund(
    refund_no: str, amount_minor: int, *, payment_token: str = TOKEN, txn_id: str | None, total: int = 1990
) -> RefundRequest:
    return RefundRequest(
        payment_token=payment_token,
        txn_id=txn_id,
        refund_no=refund_no,
        amount_minor=amount_minor,
        total_minor=total,
        currency="USD",
        reason="买家申请退款",
        notify_url=f"{PUBLIC_URL}/payments/stripe/notify",
    )


def signed(event: dict[str, Any], *, at: datetime, secret: str = WEBHOOK_SECRET) -> tuple[dict[str, str], bytes]:
    """An event body and its Stripe-Signature header, as Stripe would post them."""
    body = json.dumps(event).encode()
    return {"Stripe-Signature": protocol.signature_header([secret], body, int(at.timestamp()))}, body


def event(kind: str, obj: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": kind, "livemode": False, "data": {"object": obj}, **envelope}


def completed_session(**fields: Any) -> dict[str, Any]:
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 1990,
        "currency": "usd",
        "client_reference_id": "pay_tok_1",
        "metadata": {"payment_token": "pay_tok_1"},
        "payment_intent": "pi_1",
        "customer": None,
        "customer_details": {"email": "buyer@example.com"},
    }
    return {**session, **fields}
