"""Chargebacks (拒付) through Stripe, end to end: the simulator's bank disputes a paid charge and posts
`charge.dispute.created`, signed as every Stripe event; kaquan records it once, gives the money back on the
ledger with the dispute fee, labels the order's risk decision fraud for training, and shows it on the
console's order page. A forged, unknown or too large dispute is a 4xx that changes nothing."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.console import console_sign_in
from tests.support.disputes import (
    Shop,
    a_paid_order,
    books_problems,
    dispute_event,
    last_outcome,
    post_event,
    state,
    stripe_shop,
)
from tests.support.identity import given_user

from kaquan import ledger
from kaquan.payments import fraud, refunds
from kaquan.payments import service as payments
from kaquan.payments.models import PaymentChargeback
from kaquan.risk import learning
from kaquan.risk.models import RiskDecision
from kaquan.runtime import Runtime


@pytest.fixture
async def shop(rt: Runtime, client: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[Shop]:
    async with stripe_shop(rt, client, tmp_path) as ready:
        yield ready


async def test_a_dispute_reverses_the_sale_with_its_fee_and_labels_the_decision_fraud(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    await a_paid_order(shop)  # another buyer's order, left alone

    sent = await shop.stripe.dispute(token, fee=1500)

    assert (sent.status_code, json.loads(sent.answer)) == (200, {"received": True})
    async with shop.rt.db.read() as session:
        [chargeback] = (await session.execute(select(PaymentChargeback))).scalars()
        payment = await payments.by_token(session, token)
        labelled = (await session.execute(select(RiskDecision).where(RiskDecision.label == "fraud"))).scalars().all()
        [transfer] = (await ledger.posted(session, "chargeback", [f"chargeback:{chargeback.chargeback_no}"])).values()
        evidence = await fraud.fraud_evidence(session)
    assert chargeback.dispute_id.startswith("dp_") and chargeback.reason == "fraudulent"
    assert (chargeback.amount_minor, chargeback.currency, chargeback.fee_minor, chargeback.fee_back_minor) == (
        1990,
        "CNY",
        1500,
        0,  # Stripe keeps its own fee on a disputed charge
    )
    assert (payment.status, payment.refunded_minor) == ("refunded", 1990)
    moved = {leg.account_code: leg.debit_minor for leg in transfer.legs}
    assert moved == {
        "sales:shop:CNY": 1990,  # the sale reversed
        "receivable:gateway:stripe:CNY": -(1990 + 1500),  # Stripe took the amount and its dispute fee
        "fees:gateway:stripe:CNY": 1500,
    }
    assert await books_problems(shop.rt) == []
    [decision] = labelled
    assert decision.id == chargeback.decision_id and decision.action == "shop.order"
    assert {item.source for item in evidence} == {"chargeback"} and decision.subject in {i.subject for i in evidence}
    async with shop.rt.db.read() as session:
        examples = await learning.labelled_history(session, [])
    assert sum(example.fraud for example in examples) == 1  # training sees it as fraud


async def test_the_same_dispute_delivered_again_changes_nothing(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    sent = await shop.stripe.dispute(token)
    before = await state(shop.rt)

    again = await shop.stripe.resend(sent)

    assert again.status_code == 200
    chargebacks, transfers, accepted, paid, labels = await state(shop.rt)
    assert (chargebacks, transfers, paid, labels) == (before[0], before[1], before[3], before[4])
    assert accepted == before[2] + 1  # recorded as a duplicate, nothing booked
    assert await last_outcome(shop.rt) == "chargeback_duplicate"
    assert await books_problems(shop.rt) == []


async def test_a_forged_an_unknown_or_a_too_large_dispute_is_a_400_and_changes_nothing(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    async with shop.rt.db.read() as session:
        intent = (await payments.by_token(session, token)).gateway_txn_id
    assert intent is not None
    before = await state(shop.rt)

    forged = await post_event(shop, dispute_event("charge.dispute.created", intent), secret="whsec_someone_else")
    unknown = await post_event(shop, dispute_event("charge.dispute.created", "pi_nobody_paid_this"))
    too_large = await post_event(shop, dispute_event("charge.dispute.created", intent, amount=1991))

    assert (forged.status_code, forged.json()) == (400, {"error": "invalid_signature"})
    assert (unknown.status_code, unknown.json()) == (400, {"error": "payment_not_found"})
    assert (too_large.status_code, too_large.json()) == (400, {"error": "amount_mismatch"})
    assert await state(shop.rt) == before
    assert await books_problems(shop.rt) == []


async def test_a_partly_refunded_payment_is_charged_back_for_the_rest_and_cannot_be_refunded_again(
    shop: Shop,
) -> None:
    number, token = await a_paid_order(shop, price_minor=5000)
    async with shop.rt.db.transaction() as session:
        refund = await refunds.request_for_order(
            shop.rt.db, session, number, amount_minor=2000, reason="buyer asked", actor="t", may_approve=True
        )
    async with shop.rt.db.transaction() as session:
        await refunds.process(shop.rt.db, session, refund.id)
    await shop.stripe.drain()

    sent = await shop.stripe.dispute(token, fee=1500)

    assert sent.status_code == 200
    async with shop.rt.db.read() as session:
        payment = await payments.by_token(session, token)
        [chargeback] = (await session.execute(select(PaymentChargeback))).scalars()
        assert await refunds.remaining(session, payment) == 0
    assert chargeback.amount_minor == 3000 and (payment.status, payment.refunded_minor) == ("refunded", 5000)
    assert await books_problems(shop.rt) == []


async def test_the_console_order_page_shows_the_chargeback_in_either_language(shop: Shop) -> None:
    number, token = await a_paid_order(shop)
    await shop.stripe.dispute(token, fee=1500)
    await given_user(shop.rt, "sam", "support")
    console = await console_sign_in(shop.client, "sam")

    page = await console.get(f"/admin/orders/{number}")

    assert page.status_code == 200
    assert 'id="chargebacks"' in page.text and "拒付" in page.text and "fraudulent" in page.text
    assert "争议手续费" in page.text and "¥15.00" in page.text
    shop.client.cookies.set("lang", "en")
    english = await console.get(f"/admin/orders/{number}")
    assert "Chargebacks" in english.text and "Dispute fee" in english.text
