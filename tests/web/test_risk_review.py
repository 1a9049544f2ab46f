"""The review queue over HTTP: the admin API (queue, case with history, verdicts by role) and the console
page 风控审核 / Risk review, in both languages; bad input is refused and changes nothing."""

import httpx
import pytest
from tests.support.aftersale import order_status
from tests.support.builders import given_sku_with_codes
from tests.support.console import HTML, console_sign_in
from tests.support.http import the_error
from tests.support.identity import HeadersFor, given_user
from tests.support.reviews import CONTACT, given_held_order, given_review_rule, review_of

from kaquan.runtime import Runtime

API = "/admin/api/risk/reviews"


async def test_an_operator_reads_the_queue_and_a_case_then_approves_it_and_a_second_verdict_is_refused(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    sku = await given_sku_with_codes(rt, 6)
    await given_review_rule(rt)
    earlier = await given_held_order(rt, client, sku, paid=False)
    held = await given_held_order(rt, client, sku, paid=True)
    operator = await headers_for("operator")

    queue = (await client.get(API, headers=operator)).json()
    case = (await client.get(f"{API}/{held.number}", headers=operator)).json()

    assert [(h["number"], h["order_status"]) for h in queue] == [
        (earlier.number, "pending_payment"),
        (held.number, "paid"),
    ]
    assert queue[1]["contact"] == CONTACT and queue[1]["reasons"] == ["rule:big orders"] and queue[1]["score"] == 0
    assert case["decision"]["outcome"] == "review" and case["decision"]["label"] is None
    assert [o["number"] for o in case["earlier_orders"]] == [earlier.number]
    assert [r["status"] for r in case["earlier_reviews"]] == ["open"]
    assert case["earlier_decisions"] and case["refunded_orders"] == 0

    approved = await client.post(f"{API}/{held.number}/approve", json={"reason": "regular"}, headers=operator)
    again = await client.post(f"{API}/{held.number}/approve", headers=operator)
    other = await client.post(f"{API}/{held.number}/fraud", headers=operator)

    assert approved.json() | {"blocked": []} == {
        "number": held.number,
        "verdict": "approved",
        "order_status": "delivered",
        "refund_no": None,
        "blocked": [],
        "replayed": False,
    }
    assert again.json()["replayed"] is True
    assert the_error(other, 409, "risk_review_concluded")["status"] == "approved"
    assert [h["number"] for h in (await client.get(API, headers=operator)).json()] == [earlier.number]


async def test_verdicts_need_risk_write_and_bad_input_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    sku = await given_sku_with_codes(rt, 4)
    await given_review_rule(rt)
    held = await given_held_order(rt, client, sku, paid=True)
    support, operator = await headers_for("support"), await headers_for("operator")

    assert (await client.get(API, headers=support)).status_code == 200  # support reads the queue
    refused = await client.post(f"{API}/{held.number}/approve", headers=support)
    unknown_verdict = await client.post(f"{API}/{held.number}/ship", headers=operator)
    too_long = await client.post(f"{API}/{held.number}/decline", json={"reason": "x" * 301}, headers=operator)
    extra = await client.post(f"{API}/{held.number}/decline", json={"why": "x"}, headers=operator)
    unknown_order = await client.post(f"{API}/0000/decline", headers=operator)
    not_held = await client.get(f"{API}/{'9' * 40}", headers=operator)

    assert refused.status_code == 403
    assert unknown_verdict.status_code == 422 and too_long.status_code == 422 and extra.status_code == 422
    the_error(unknown_order, 404, "order_not_found")
    assert not_held.status_code == 422
    assert (await review_of(rt, held.number)).status == "open"
    assert await order_status(rt, held.number) == "paid"


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_console_page_shows_held_orders_as_cards_and_a_verdict_lands_back_on_it(
    rt: Runtime, client: httpx.AsyncClient, lang: str
) -> None:
    sku = await given_sku_with_codes(rt, 4)
    await given_review_rule(rt)
    held = await given_held_order(rt, client, sku, paid=True)
    await given_user(rt, "alice", "operator")
    console = await console_sign_in(client)
    client.cookies.set("lang", lang)

    page = await console.get("/admin/risk/review")
    assert page.status_code == 200
    assert f'id="review-{held.number}"' in page.text and "rule:big orders" in page.text
    assert ("风控审核" if lang == "zh" else "Risk review") in page.text
    assert ("已付款，等待审核后发货" if lang == "zh" else "Paid; delivered once approved") in page.text

    declined = await console.post(f"/admin/risk/review/{held.number}", {"verdict": "decline", "reason": "no"})
    assert declined.status_code == 303
    after = await console.get(declined.headers["location"])
    assert 'id="verdict-notice"' in after.text and held.number in after.text
    assert f'id="review-{held.number}"' not in after.text
    assert await order_status(rt, held.number) == "paid_unfulfilled"


async def test_the_buyer_of_a_held_paid_order_is_told_it_waits_for_a_person(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 4)
    await given_review_rule(rt)
    held = await given_held_order(rt, client, sku, paid=True)
    client.cookies.set(f"kqo_{held.number}", held.lookup_secret)

    page = await client.get(f"/orders/{held.number}", params={"lang": "zh"}, headers=HTML)

    assert page.status_code == 200 and 'id="held-for-review"' in page.text and "需要人工审核" in page.text
