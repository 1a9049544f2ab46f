"""The review queue: an order risk answers `review` is placed and held; it may be paid but is delivered only
when a person approves it; a decline cancels it or refunds it; fraud also blocks the buyer and labels the
decision. Exactly one of concurrent verdicts on one order wins."""

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.aftersale import audited, order_status, refunds_of
from tests.support.builders import given_sku_with_codes, pay, stock_of
from tests.support.http import the_error
from tests.support.reviews import CONTACT, given_held_order, given_review_rule, label_of, review_of, verdict

from kaquan.kit.errors import BadInput, DomainError, NotFound
from kaquan.orders import service as orders
from kaquan.payments import review
from kaquan.risk import lists, reviews
from kaquan.runtime import Runtime


@pytest.fixture
def shop(rt: Runtime) -> Runtime:
    """The runtime's own decision point (counters in the database): a verdict never reads a counter."""
    return rt


async def test_an_order_for_review_is_placed_and_held_and_its_payment_waits(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)

    held = await given_held_order(shop, client, sku, paid=True)

    assert await order_status(shop, held.number) == "paid"
    assert (await stock_of(shop, sku)).reserved == 2  # its codes wait for it, sold to nobody
    found = await review_of(shop, held.number)
    assert found.status == "open" and found.reasons == ["rule:big orders"] and found.contact and found.ip
    assert await label_of(shop, held.number) is None
    small = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1},
        headers={"X-Client-Token": "s" * 32, "Idempotency-Key": "k1"},
    )
    assert small.status_code == 201 and await order_status(shop, small.json()["number"]) == "pending_payment"
    async with shop.db.read() as session:
        assert len(await reviews.open_reviews(session)) == 1


async def test_approving_a_paid_order_delivers_it_once_and_labels_its_decision_legit(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=True)

    first = await verdict(shop, held.number, "approve", "known buyer")
    again = await verdict(shop, held.number, "approve")

    assert (first.verdict, first.order_status, first.replayed) == ("approved", "delivered", False)
    assert again.replayed and again.order_status == "delivered"
    assert (await stock_of(shop, sku)).sold == 2
    assert await label_of(shop, held.number) == "legit"
    assert await audited(shop, "risk.review_approved") == 1
    with pytest.raises(reviews.ReviewConcluded) as refused:
        await verdict(shop, held.number, "decline")
    assert refused.value.status == 409 and refused.value.details["status"] == "approved"


async def test_an_order_approved_before_it_is_paid_is_delivered_by_its_payment(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=False)

    assert (await verdict(shop, held.number, "approve")).order_status == "pending_payment"
    assert await pay(shop, held.payment_token) == "delivered"
    assert await order_status(shop, held.number) == "delivered"


async def test_declining_an_unpaid_order_cancels_it_and_a_late_payment_is_refunded_not_delivered(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=False)

    declined = await verdict(shop, held.number, "decline", "could not reach the buyer")

    assert (declined.order_status, declined.refund_no) == ("cancelled", None)
    assert (await stock_of(shop, sku)).available == 5
    assert await label_of(shop, held.number) is None  # a decline says nothing about fraud
    assert await pay(shop, held.payment_token) == "declined_refunding"
    assert await order_status(shop, held.number) == "paid_unfulfilled"
    assert (await stock_of(shop, sku)).available == 5
    assert [r.reason for r in await refunds_of(shop)] == ["paid but not delivered (declined)"]


async def test_declining_a_paid_order_refunds_all_of_it_and_gives_its_codes_back(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=True)

    declined = await verdict(shop, held.number, "decline")

    [refund] = await refunds_of(shop)
    assert declined.refund_no == refund.refund_no and refund.reason == "declined in risk review"
    assert refund.status == "requested" and refund.amount_minor > 0  # approved by the verdict, on its way
    assert declined.order_status == "paid_unfulfilled"
    assert (await stock_of(shop, sku)).available == 5
    assert await audited(shop, "risk.review_declined") == 1


async def test_fraud_declines_blocks_the_buyer_and_labels_the_decision(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=True)

    fraud = await verdict(shop, held.number, "fraud", "stolen card")

    assert {key.partition(":")[0] for key in fraud.blocked} == {"contact", "device", "ip"}
    assert await label_of(shop, held.number) == "fraud"
    assert len(await refunds_of(shop)) == 1
    async with shop.db.read() as session:
        assert {e.kind for e in await lists.entries(session)} == {"contact", "device", "ip"}
    shop.risk.invalidate()
    again = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1, "contact": CONTACT.upper()},
        headers={"X-Client-Token": "z" * 32, "Idempotency-Key": "other"},
    )
    the_error(again, 403, "risk_declined")


async def test_a_verdict_on_an_order_that_is_not_held_or_does_not_exist_changes_nothing(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    plain = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1},
        headers={"X-Client-Token": "p" * 32, "Idempotency-Key": "p"},
    )
    with pytest.raises(reviews.ReviewNotFound):
        await verdict(shop, plain.json()["number"], "approve")
    with pytest.raises(NotFound):
        await verdict(shop, "000000", "fraud")
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=True)
    with pytest.raises(BadInput):
        await verdict(shop, held.number, "decline", "x" * 301)
    assert (await review_of(shop, held.number)).status == "open"
    assert await order_status(shop, held.number) == "paid"


async def test_of_concurrent_verdicts_on_one_order_exactly_one_wins(shop: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=True)
    asked: list[review.Verdict] = ["approve", "decline", "fraud"] * 4

    async def one(choice: review.Verdict) -> str:
        try:
            done = await verdict(shop, held.number, choice)
        except DomainError as exc:
            return exc.code
        return "replayed" if done.replayed else f"won:{done.verdict}"

    answers = Counter(await asyncio.gather(*(one(choice) for choice in asked)))

    [winner] = [answer for answer in answers if answer.startswith("won:")]
    assert answers[winner] == 1
    assert answers["replayed"] == 3  # the other requests for the winning verdict
    assert answers["risk_review_concluded"] == 8
    status = (await review_of(shop, held.number)).status
    assert winner == f"won:{status}"
    audits = sum([await audited(shop, f"risk.review_{s}") for s in reviews.VERDICTS])
    assert audits == 1
    assert len(await refunds_of(shop)) == (0 if status == "approved" else 1)
    stock = await stock_of(shop, sku)
    assert (stock.sold, stock.available) == ((2, 3) if status == "approved" else (0, 5))


async def test_without_the_order_lock_concurrent_verdicts_both_win(shop: Runtime, client: httpx.AsyncClient) -> None:
    """The race the lock prevents is real: with the protection switched off, two verdicts both go through."""
    if not shop.db.is_postgresql:
        pytest.skip("SQLite without BEGIN IMMEDIATE refuses the second writer instead of racing it")
    sku = await given_sku_with_codes(shop, 5)
    await given_review_rule(shop)
    held = await given_held_order(shop, client, sku, paid=False)

    async def one(choice: review.Verdict) -> bool:
        try:
            await verdict(shop, held.number, choice)
        except DomainError:
            return False
        return True

    with shop.db.unprotected():
        won = await asyncio.gather(*(one("approve" if i % 2 else "decline") for i in range(8)))
    assert sum(won) > 1
    async with shop.db.read() as session:
        entries = (await session.execute(select(func.count()).where(reviews.RiskReview.id > 0))).scalar_one()
    assert entries == 1


async def test_a_retry_answered_review_never_holds_the_order_its_first_request_placed(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 5)
    headers = {"X-Client-Token": "r" * 32, "Idempotency-Key": "same"}
    first = await client.post("/api/orders", json={"sku": sku.code, "quantity": 2}, headers=headers)
    await given_review_rule(shop)

    retry = await client.post("/api/orders", json={"sku": sku.code, "quantity": 2}, headers=headers)

    assert retry.status_code == 201 and retry.json()["number"] == first.json()["number"]
    async with shop.db.read() as session:
        assert await reviews.open_reviews(session) == []
        held = await reviews.status_of(session, (await orders.by_number(session, first.json()["number"])).id)
    assert held is None
