"""The admin API for after sale: support asks, finance approves, the worker refunds; bad input is refused
with the one error shape and a machine code, and changes nothing."""

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.aftersale import given_marketplace_order, given_shop_order, refunds_of
from tests.support.builders import given_sku_with_codes, place_order
from tests.support.identity import HeadersFor

from kaquan.audit.models import AuditEntry
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime
from kaquan.worker import run_once

API = "/admin/api"


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "request_id"}, body
    code: str = body["error"]["code"]
    return code


async def test_support_asks_finance_approves_the_worker_refunds(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    order = await given_shop_order(rt, quantity=2)
    support, finance = await headers_for("support"), await headers_for("finance")

    asked = await client.post(
        f"{API}/orders/{order.number}/refunds", json={"reason": "codes did not work"}, headers=support
    )
    assert asked.status_code == 201, asked.text
    refund = asked.json()
    assert (refund["status"], refund["amount_minor"], refund["route"]) == ("awaiting_approval", 3980, "gateway")

    queue = await client.get(f"{API}/refunds", headers=finance)
    assert [r["refund_no"] for r in queue.json()] == [refund["refund_no"]]
    assert queue.json()[0]["reason"] == "codes did not work"

    approved = await client.post(f"{API}/refunds/{refund['refund_no']}/approve", json={}, headers=finance)
    assert approved.json()["status"] == "requested"
    again = await client.post(f"{API}/refunds/{refund['refund_no']}/approve", json={}, headers=finance)
    assert (again.status_code, error_code(again)) == (409, "refund_not_allowed")

    await run_once(rt)
    done = await client.get(f"{API}/refunds", params={"status": "succeeded"}, headers=finance)
    assert [(r["refund_no"], r["order_status"]) for r in done.json()] == [(refund["refund_no"], "refunded")]


async def test_finance_refunds_at_once_and_a_marketplace_order_through_the_same_route(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    order = await given_marketplace_order(rt)
    finance = await headers_for("finance")

    done = await client.post(f"{API}/orders/{order.number}/refunds", json={"reason": "buyer returned"}, headers=finance)

    assert done.status_code == 201, done.text
    assert (done.json()["route"], done.json()["status"], done.json()["refund_no"]) == ("marketplace", "succeeded", None)
    assert done.json()["order_status"] == "refunded"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": "x", "amount_minor": 0}, 422, "validation_error"),
        ({"reason": "x", "amount_minor": -5}, 422, "validation_error"),
        ({"reason": "x", "amount_minor": "100"}, 422, "validation_error"),
        ({"amount_minor": 100}, 422, "validation_error"),
        ({"reason": ""}, 422, "validation_error"),
        ({"reason": "x", "amount_minor": 1991}, 409, "refund_exceeds_remaining"),
    ],
)
async def test_bad_refund_requests_are_refused_and_change_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], body: object, status: int, code: str
) -> None:
    order = await given_shop_order(rt, quantity=1)

    refused = await client.post(f"{API}/orders/{order.number}/refunds", json=body, headers=admin_headers)

    assert (refused.status_code, error_code(refused)) == (status, code)
    assert await refunds_of(rt) == []


async def test_unknown_orders_and_refunds_are_not_found(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    order = await client.post(f"{API}/orders/NOPE/refunds", json={"reason": "x"}, headers=admin_headers)
    refund = await client.post(f"{API}/refunds/RNOPE/approve", json={}, headers=admin_headers)
    resend = await client.post(f"{API}/orders/NOPE/resend", headers=admin_headers)

    assert [r.status_code for r in (order, refund, resend)] == [404, 404, 404]
    assert error_code(refund) == "refund_not_found"


async def test_who_may_do_what(rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    order = await given_shop_order(rt, quantity=1)
    operator, support, auditor = (
        await headers_for("operator"),
        await headers_for("support"),
        await headers_for("auditor"),
    )
    body = {"reason": "x"}

    by_operator = await client.post(f"{API}/orders/{order.number}/refunds", json=body, headers=operator)
    asked = await client.post(f"{API}/orders/{order.number}/refunds", json=body, headers=support)
    refund_no = asked.json()["refund_no"]
    self_approved = await client.post(f"{API}/refunds/{refund_no}/approve", json={}, headers=support)
    by_auditor = await client.post(f"{API}/refunds/{refund_no}/reject", json={"note": "no"}, headers=auditor)
    listed_by_support = await client.get(f"{API}/refunds", headers=support)

    assert [r.status_code for r in (by_operator, self_approved, by_auditor, listed_by_support)] == [403] * 4
    assert (await client.get(f"{API}/refunds", headers=auditor)).status_code == 200
    assert [r.status for r in await refunds_of(rt)] == ["awaiting_approval"]


async def test_a_rejection_needs_a_note_and_only_a_failed_refund_is_retried(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], headers_for: HeadersFor
) -> None:
    order = await given_shop_order(rt, quantity=1)
    asked = await client.post(
        f"{API}/orders/{order.number}/refunds", json={"reason": "x"}, headers=await headers_for("support")
    )
    refund_no = asked.json()["refund_no"]

    bare = await client.post(f"{API}/refunds/{refund_no}/reject", json={}, headers=admin_headers)
    retried = await client.post(f"{API}/refunds/{refund_no}/retry", headers=admin_headers)
    rejected = await client.post(f"{API}/refunds/{refund_no}/reject", json={"note": "used"}, headers=admin_headers)

    assert (bare.status_code, error_code(bare)) == (400, "bad_input")
    assert (retried.status_code, error_code(retried)) == (409, "refund_not_allowed")
    assert (rejected.json()["status"], rejected.json()["detail"]) == ("rejected", "used")


async def test_support_resends_a_delivery_a_few_times_an_hour(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    order = await given_shop_order(rt, quantity=1)
    support = await headers_for("support")
    await run_once(rt)  # the first notice goes out

    answers = [await client.post(f"{API}/orders/{order.number}/resend", headers=support) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].json() == {"number": order.number, "status": "delivered", "resent": True}
    assert error_code(answers[3]) == "rate_limited" and "retry-after" in answers[3].headers
    assert "secret" not in answers[0].text and order.codes[0] not in answers[0].text
    await run_once(rt)
    async with rt.db.read() as session:
        count = await session.execute(select(func.count()).where(AuditEntry.action == "order.delivery_resent"))
        assert count.scalar_one() == 3
        resent = await session.execute(
            select(func.count()).where(OutboxEvent.topic == "order.delivered", OutboxEvent.done_at.is_not(None))
        )
        assert resent.scalar_one() == 4  # each a notice of its own (tests/notifications: one mail each)


async def test_an_undelivered_order_is_not_resent(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    number, _, _ = await place_order(rt, await given_sku_with_codes(rt, 1))

    refused = await client.post(f"{API}/orders/{number}/resend", headers=admin_headers)

    assert (refused.status_code, error_code(refused)) == (409, "order_not_delivered")
