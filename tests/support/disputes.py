"""A shop selling through the Stripe simulator, for chargebacks and their outcomes: a paid order placed through
the shop's API (so risk decided it), what the ledger check names, and a snapshot of what a dispute changes."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes
from tests.support.reconciling import wechat_shop as gateway_shop

from kaquan import accounting, ledger
from kaquan.payments import refunds
from kaquan.payments import service as payments
from kaquan.payments.models import Payment, PaymentCallback, PaymentChargeback
from kaquan.payments.stripe import protocol
from kaquan.payments.stripe.simulator import StripeSimulator
from kaquan.risk.models import RiskDecision
from kaquan.runtime import Runtime

PUBLIC_URL = "http://shop.test"
CONTACT = "buyer@example.com"


@dataclass
class Shop:
    rt: Runtime
    client: httpx.AsyncClient
    stripe: StripeSimulator


@asynccontextmanager
async def stripe_shop(rt: Runtime, client: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[Shop]:
    """The shop with Stripe (simulated) as its one gateway, its webhooks posted to the app."""
    async with gateway_shop(rt, tmp_path, "stripe") as ready:
        assert isinstance(ready.simulation.provider, StripeSimulator)
        yield Shop(rt, client, ready.simulation.provider)


async def a_paid_order(shop: Shop, *, price_minor: int = 1990) -> tuple[str, str]:
    """An order placed through the shop's API (so risk decided it), paid by card at Stripe: (number, token)."""
    sku = await given_sku_with_codes(shop.rt, 3, price_minor=price_minor)
    placed = await shop.client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1, "contact": CONTACT},
        headers={"X-Client-Token": "c" * 32, "Idempotency-Key": f"k-{sku.id}"},
    )
    assert placed.status_code == 201, placed.text
    number, token = placed.json()["number"], placed.json()["pay_url"].rsplit("/", 1)[1]
    await payments.choose(shop.rt.db, token, "stripe:checkout", public_url=PUBLIC_URL, payer=payments.Payer())
    sent = await shop.stripe.pay(token)
    assert sent is not None and sent.status_code == 200, sent
    await shop.rt.risk.log.flush()
    return number, token


async def books_problems(rt: Runtime) -> list[str]:
    """What `kaquan ledger check` names: the ledger's own balance and the books against the payments."""
    async with rt.db.read() as session:
        paid, done = await refunds.books_records(session)
        return (await ledger.check(session)).problems + await accounting.check_books(session, paid, done)


async def state(rt: Runtime) -> tuple[int, int, int, list[tuple[Any, ...]], list[str | None]]:
    """Chargebacks, ledger transfers, accepted callbacks, payments' refunded amounts, decision labels."""
    async with rt.db.read() as session:
        chargebacks = await session.scalar(select(func.count()).select_from(PaymentChargeback))
        transfers = (await ledger.check(session)).transfers
        accepted = await session.scalar(select(func.count()).where(PaymentCallback.accepted.is_(True)))
        paid = (await session.execute(select(Payment.refunded_minor, Payment.status).order_by(Payment.id))).all()
        labels = list((await session.execute(select(RiskDecision.label).order_by(RiskDecision.id))).scalars())
    return int(chargebacks or 0), transfers, int(accepted or 0), [tuple(row) for row in paid], labels


async def last_outcome(rt: Runtime) -> str:
    async with rt.db.read() as session:
        last = (await session.execute(select(PaymentCallback).order_by(PaymentCallback.id.desc()))).scalars().first()
    assert last is not None
    return last.outcome


async def post_event(shop: Shop, event: dict[str, Any], *, secret: str | None = None) -> httpx.Response:
    """A Stripe event posted to the shop's webhook, signed now with the endpoint's secret (or `secret`)."""
    body = json.dumps(event).encode()
    stamp = int(shop.stripe.now().timestamp())
    header = protocol.signature_header([secret or shop.stripe.webhook_secret], body, stamp)
    return await shop.client.post(
        "/payments/stripe/notify",
        content=body,
        headers={"Stripe-Signature": header, "content-type": "application/json"},
    )


def dispute_event(
    kind: str,
    intent: str,
    *,
    amount: int = 1990,
    status: str = "needs_response",
    dispute_id: str = "dp_forged",
    withdrawn: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Stripe dispute event of `kind` about the payment intent `intent`, built by hand (no simulator behind it);
    by default the dispute took its amount with a 1,500 fee."""
    txns = [{"id": "txn_1", "amount": -amount, "fee": 1500}] if withdrawn is None else withdrawn
    return {
        "id": f"evt_{kind}",
        "object": "event",
        "type": kind,
        "livemode": False,
        "data": {
            "object": {
                "id": dispute_id,
                "object": "dispute",
                "amount": amount,
                "currency": "cny",
                "charge": "ch_1",
                "payment_intent": intent,
                "reason": "fraudulent",
                "status": status,
                "balance_transactions": txns,
            }
        },
    }
