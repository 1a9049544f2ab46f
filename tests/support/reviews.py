"""Orders held for review: a review rule, a held shop order placed through the shop API, a verdict."""

import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from tests.support.builders import GivenSku, pay

from kaquan.orders import service as orders
from kaquan.payments import review
from kaquan.payments import service as payments
from kaquan.risk import RiskContext, reviews, rules
from kaquan.runtime import Runtime

CONTACT = "held.buyer@example.com"


async def given_review_rule(rt: Runtime, expression: str = "order.quantity >= 2") -> None:
    async with rt.db.transaction() as session:
        await rules.add(session, name="big orders", expression=expression, outcome="review", enabled=True, actor="t")
    rt.risk.invalidate()


@dataclass(frozen=True)
class HeldOrder:
    number: str
    lookup_secret: str
    payment_token: str


async def given_held_order(
    rt: Runtime, client: httpx.AsyncClient, sku: GivenSku, *, paid: bool, contact: str = CONTACT
) -> HeldOrder:
    """A shop order of 2 units (a review rule must be on), placed through the shop API, paid if asked."""
    headers = {"X-Client-Token": "h" * 32, "Idempotency-Key": secrets.token_hex(8)}
    placed = await client.post(
        "/api/orders", json={"sku": sku.code, "quantity": 2, "contact": contact}, headers=headers
    )
    assert placed.status_code == 201, placed.text
    answer = placed.json()
    async with rt.db.read() as session:
        order = await orders.by_number(session, answer["number"])
        payment = await payments.latest_for_order(session, order.id)
    assert payment is not None
    if paid:
        assert await pay(rt, payment.token) == "held_for_review"
    return HeldOrder(answer["number"], answer["lookup_secret"], payment.token)


async def verdict(rt: Runtime, number: str, verdict: review.Verdict, reason: str = "") -> review.VerdictResult:
    async with rt.db.transaction() as session:
        return await review.give_verdict(rt.db, session, number, verdict, actor="reviewer@example.com", reason=reason)


async def review_of(rt: Runtime, number: str) -> reviews.RiskReview:
    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        return (await reviews.of_orders(session, [order.id]))[order.id]


async def label_of(rt: Runtime, number: str) -> str | None:
    found = await review_of(rt, number)
    async with rt.db.read() as session:
        stmt = select(reviews.RiskDecision.label).where(reviews.RiskDecision.id == found.decision_id)
        return (await session.execute(stmt)).scalar_one()


async def given_held_order_placed(
    rt: Runtime, sku: GivenSku, *, contact: str = CONTACT, ip: str = "198.51.100.7", paid: bool = True
) -> str:
    """The same held order placed without HTTP (a served app's seed): decided, held by checkout, paid."""
    request = orders.OrderRequest(
        sku=sku.id,
        quantity=2,
        idempotency_key=secrets.token_hex(8),
        client_token=secrets.token_hex(16),
        contact=contact,
        buyer_ip=ip,
    )
    decision = await rt.risk.decide(
        RiskContext("shop.order", ip=ip, device=request.client_token, contact=contact, quantity=2, can_hold=True)
    )
    assert decision.holds, decision
    async with rt.db.transaction() as session:
        sale = await payments.checkout(
            rt.db, session, rt.order_keys, rt.dev_gateway, request, rt.settings, decision=decision
        )
    if paid:
        assert await pay(rt, sale.payment.token) == "held_for_review"
    return sale.order.number
