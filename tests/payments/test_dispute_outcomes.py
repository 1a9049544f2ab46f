"""A dispute's end through Stripe (`charge.dispute.closed`), end to end through the simulator: won gives the
money back (the chargeback reversed on the ledger, with the part of the dispute fee Stripe returned) and
relabels the order's risk decision legit; lost is final and keeps the fraud label; an inquiry's close or a
dispute kaquan never saw is acknowledged and recorded; a redelivery changes nothing; a forged one is refused.
The ledger check is clean after every path."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


async def disputed_order(shop: Shop, *, fee: int = 1500) -> tuple[str, str, str]:
    """A paid order its buyer's bank disputed: (order number, payment token, dispute id)."""
    number, token = await a_paid_order(shop)
    opened = await shop.stripe.dispute(token, fee=fee)
    assert opened.status_code == 200, opened
    return number, token, shop.stripe.dispute_of(token)


async def the_chargeback(shop: Shop) -> PaymentChargeback:
    async with shop.rt.db.read() as session:
        [chargeback] = (await session.execute(select(PaymentChargeback))).scalars()
    return chargeback


async def label_of(shop: Shop, decision_id: int | None) -> str | None:
    async with shop.rt.db.read() as session:
        return await session.scalar(select(RiskDecision.label).where(RiskDecision.id == decision_id))


async def test_a_won_dispute_gives_the_money_back_and_relabels_the_decision_legit(shop: Shop) -> None:
    _, token, dispute_id = await disputed_order(shop, fee=1500)

    sent = await shop.stripe.close_dispute(dispute_id, "won", fee_returned=1500)

    assert (sent.status_code, json.loads(sent.answer)) == (200, {"received": True})
    assert await last_outcome(shop.rt) == "dispute_won"
    chargeback = await the_chargeback(shop)
    assert (chargeback.status, chargeback.reinstated_minor, chargeback.fee_returned_minor) == ("won", 1990, 1500)
    assert chargeback.closed_at is not None
    async with shop.rt.db.read() as session:
        payment = await payments.by_token(session, token)
        [back] = (await ledger.posted(session, "dispute_won", [f"dispute_won:{chargeback.chargeback_no}"])).values()
        evidence = await fraud.fraud_evidence(session)
        examples = await learning.labelled_history(session, [])
        refundable = await refunds.remaining(session, payment)
    assert (payment.status, payment.refunded_minor, refundable) == ("succeeded", 0, 1990)
    assert {leg.account_code: leg.debit_minor for leg in back.legs} == {
        "sales:shop:CNY": -1990,  # the sale booked again
        "receivable:gateway:stripe:CNY": 1990 + 1500,  # Stripe gave back the amount and the dispute fee
        "fees:gateway:stripe:CNY": -1500,
    }
    assert await label_of(shop, chargeback.decision_id) == "legit"
    assert [item for item in evidence if item.source == "chargeback"] == []
    assert sum(example.fraud for example in examples) == 0  # training no longer sees it as fraud
    assert await books_problems(shop.rt) == []


async def test_a_won_dispute_whose_fee_stripe_keeps_costs_only_the_fee(shop: Shop) -> None:
    _, _, dispute_id = await disputed_order(shop, fee=1500)

    await shop.stripe.close_dispute(dispute_id, "won", fee_returned=0)

    chargeback = await the_chargeback(shop)
    async with shop.rt.db.read() as session:
        moved = await ledger.posted(
            session, "chargeback", [f"chargeback:{chargeback.chargeback_no}"]
        ) | await ledger.posted(session, "dispute_won", [f"dispute_won:{chargeback.chargeback_no}"])
    net: dict[str, int] = {}
    for transfer in moved.values():
        for leg in transfer.legs:
            net[leg.account_code] = net.get(leg.account_code, 0) + leg.debit_minor
    assert net == {"sales:shop:CNY": 0, "receivable:gateway:stripe:CNY": -1500, "fees:gateway:stripe:CNY": 1500}
    assert await books_problems(shop.rt) == []


async def test_a_lost_dispute_is_final_moves_nothing_and_keeps_the_fraud_label(shop: Shop) -> None:
    _, token, dispute_id = await disputed_order(shop)
    before = await state(shop.rt)

    sent = await shop.stripe.close_dispute(dispute_id, "lost")

    assert sent.status_code == 200 and await last_outcome(shop.rt) == "dispute_lost"
    chargebacks, transfers, accepted, paid, labels = await state(shop.rt)
    assert (chargebacks, transfers, paid, labels) == (before[0], before[1], before[3], before[4])
    assert accepted == before[2] + 1
    chargeback = await the_chargeback(shop)
    assert (chargeback.status, chargeback.reinstated_minor) == ("lost", 0) and chargeback.closed_at is not None
    assert await label_of(shop, chargeback.decision_id) == "fraud"
    async with shop.rt.db.read() as session:
        assert (await payments.by_token(session, token)).status == "refunded"
    assert await books_problems(shop.rt) == []


@pytest.mark.parametrize("outcome", ["won", "lost"])
async def test_a_closed_dispute_delivered_again_changes_nothing(shop: Shop, outcome: str) -> None:
    _, _, dispute_id = await disputed_order(shop)
    sent = await shop.stripe.close_dispute(dispute_id, outcome)
    before = await state(shop.rt)

    again = await shop.stripe.resend(sent)

    assert again.status_code == 200 and await last_outcome(shop.rt) == "dispute_closed_duplicate"
    chargebacks, transfers, accepted, paid, labels = await state(shop.rt)
    assert (chargebacks, transfers, paid, labels) == (before[0], before[1], before[3], before[4])
    assert accepted == before[2] + 1
    assert await books_problems(shop.rt) == []


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the shop is down", request=request)


async def test_a_close_that_overtakes_its_opening_applies_both_once(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    reachable = shop.stripe.notify_transport
    shop.stripe.notify_transport = httpx.MockTransport(unreachable)
    opened = await shop.stripe.dispute(token, fee=1500)  # lost on the way; Stripe will retry it later
    shop.stripe.notify_transport = reachable
    assert opened.status_code == 0

    closed = await shop.stripe.close_dispute(shop.stripe.dispute_of(token), "won", fee_returned=1500)
    late = await shop.stripe.resend(opened)

    assert (closed.status_code, late.status_code) == (200, 200)
    assert await last_outcome(shop.rt) == "chargeback_duplicate"
    chargeback = await the_chargeback(shop)
    assert (chargeback.status, chargeback.amount_minor, chargeback.reinstated_minor) == ("won", 1990, 1990)
    async with shop.rt.db.read() as session:
        payment = await payments.by_token(session, token)
    assert (payment.status, payment.refunded_minor) == ("succeeded", 0)
    assert await label_of(shop, chargeback.decision_id) == "legit"
    assert await books_problems(shop.rt) == []


def closed_event(intent: str, *, status: str, dispute_id: str = "dp_elsewhere") -> dict[str, Any]:
    return dispute_event("charge.dispute.closed", intent, status=status, dispute_id=dispute_id, withdrawn=[])


async def test_an_unknown_dispute_or_a_closed_inquiry_is_acknowledged_and_recorded(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    async with shop.rt.db.read() as session:
        intent = (await payments.by_token(session, token)).gateway_txn_id
    assert intent is not None
    before = await state(shop.rt)

    unknown = await post_event(shop, closed_event("pi_nobody_paid_this", status="lost"))
    unknown_outcome = await last_outcome(shop.rt)
    inquiry = await post_event(shop, closed_event(intent, status="warning_closed"))

    assert (unknown.status_code, inquiry.status_code) == (200, 200)
    assert unknown_outcome == await last_outcome(shop.rt) == "dispute_closed_unknown"
    chargebacks, transfers, accepted, paid, labels = await state(shop.rt)
    assert (chargebacks, transfers, paid, labels) == (before[0], before[1], before[3], before[4])
    assert accepted == before[2] + 2
    assert await books_problems(shop.rt) == []


async def test_an_inquiry_opening_takes_no_money_and_is_acknowledged(shop: Shop) -> None:
    _, token = await a_paid_order(shop)
    async with shop.rt.db.read() as session:
        intent = (await payments.by_token(session, token)).gateway_txn_id
    assert intent is not None
    inquiry = dispute_event("charge.dispute.created", intent, status="warning_needs_response", withdrawn=[])
    before = await state(shop.rt)

    answer = await post_event(shop, inquiry)

    assert answer.status_code == 200 and await last_outcome(shop.rt) == "ignored:charge.dispute.created:inquiry"
    chargebacks, transfers, accepted, paid, labels = await state(shop.rt)
    assert (chargebacks, transfers, paid, labels) == (before[0], before[1], before[3], before[4])
    assert accepted == before[2] + 1


async def test_a_forged_or_malformed_close_is_a_400_and_changes_nothing(shop: Shop) -> None:
    _, _, dispute_id = await disputed_order(shop)
    before = await state(shop.rt)

    forged = await post_event(shop, closed_event("pi_x", status="won", dispute_id=dispute_id), secret="whsec_other")
    no_outcome = await post_event(shop, closed_event("pi_x", status="under_review", dispute_id=dispute_id))

    assert (forged.status_code, forged.json()) == (400, {"error": "invalid_signature"})
    assert (no_outcome.status_code, no_outcome.json()) == (400, {"error": "malformed_callback"})
    assert await state(shop.rt) == before
    assert (await the_chargeback(shop)).status == "open"


async def test_the_console_order_page_shows_the_outcome(shop: Shop) -> None:
    number, _, dispute_id = await disputed_order(shop)
    await shop.stripe.close_dispute(dispute_id, "won", fee_returned=1500)
    await given_user(shop.rt, "sam", "support")
    console = await console_sign_in(shop.client, "sam")

    page = await console.get(f"/admin/orders/{number}")

    assert page.status_code == 200
    assert 'class="dispute-status status-won"' in page.text and "胜诉" in page.text and "¥19.90" in page.text
    shop.client.cookies.set("lang", "en")
    english = await console.get(f"/admin/orders/{number}")
    assert "Won: the decision is relabelled legit" in english.text
