"""The decision on the order paths, through HTTP: a declined order or purchase is a 403 that changes
nothing; a challenged one is a 403 carrying the challenge, and the same request with its solution goes
through once."""

import secrets

import httpx
from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes, stock_of
from tests.support.flash import given_event
from tests.support.http import the_error

from kaquan.flashsale.purchase import FlashSale
from kaquan.orders.models import Order
from kaquan.risk import recent, rules, solve
from kaquan.runtime import Runtime

CLIENT = {"X-Client-Token": "c" * 32}


async def given_rule(rt: Runtime, expression: str, **effect: object) -> None:
    async with rt.db.transaction() as session:
        await rules.add(session, name=expression[:80], expression=expression, enabled=True, actor="t", **effect)  # type: ignore[arg-type]
    rt.risk.invalidate()


async def orders_placed(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


async def order(
    client: httpx.AsyncClient, sku: str, *, quantity: int = 1, headers: dict[str, str] | None = None
) -> httpx.Response:
    key = {"Idempotency-Key": secrets.token_hex(8)}
    sent = CLIENT | key | (headers or {})
    return await client.post("/api/orders", json={"sku": sku, "quantity": quantity}, headers=sent)


async def test_a_declined_shop_order_is_a_403_and_nothing_is_held(shop: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(shop, 10)
    await given_rule(shop, "order.quantity >= 5", outcome="decline")
    before = await stock_of(shop, sku)

    refused = await order(client, sku.code, quantity=5)

    details = the_error(refused, 403, "risk_declined")
    assert details == {}  # the reasons stay with the recorded decision
    assert await orders_placed(shop) == 0 and await stock_of(shop, sku) == before
    assert (await order(client, sku.code, quantity=1)).status_code == 201


async def test_a_client_holding_an_unpaid_order_is_challenged_and_its_solution_passes_once(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 10)
    await given_rule(shop, "holds.unpaid_orders >= 1 and request.action == 'shop.order'", score=50)
    assert (await order(client, sku.code)).status_code == 201

    challenged = await order(client, sku.code)
    challenge = the_error(challenged, 403, "challenge_required")["challenge"]
    assert await orders_placed(shop) == 1
    solution = solve(challenge["token"], challenge["bits"])
    passed = await order(client, sku.code, headers={"X-Risk-Solution": solution, "X-Page-Ms": "2300"})
    replayed = await order(client, sku.code, headers={"X-Risk-Solution": solution})

    assert passed.status_code == 201, passed.text
    assert the_error(replayed, 403, "challenge_required")["previous_solution"] == "challenge_replayed"
    assert await orders_placed(shop) == 2
    await shop.risk.log.flush()
    async with shop.db.read() as session:
        decisions = await recent(session, limit=10)
    assert [d.outcome for d in reversed(decisions)] == ["approve", "challenge", "approve", "challenge"]
    assert decisions[1].features["page.submit_ms"] == 2300
    assert decisions[1].features["holds.unpaid_orders"] == 1


async def test_the_shop_form_is_challenged_and_passes_with_the_solution_in_its_field(
    shop: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 10)
    await given_rule(shop, "request.action == 'shop.order'", outcome="challenge")
    form = {"sku": sku.code, "quantity": "1", "idempotency_key": secrets.token_hex(8), "page_ms": "1800"}

    challenged = await client.post("/orders", data=form, headers={"Accept": "application/json"})
    challenge = the_error(challenged, 403, "challenge_required")["challenge"]
    passed = await client.post("/orders", data=form | {"risk_solution": solve(challenge["token"], challenge["bits"])})

    assert passed.status_code == 303 and passed.headers["location"].startswith("/orders/")
    assert await orders_placed(shop) == 1


async def test_a_flash_purchase_the_gate_admits_is_declined_or_challenged_and_its_admission_given_back(
    shop: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(shop, 10)
    event_id = await given_event(shop, sku, stock=3, limit=2)
    await given_rule(shop, "order.quantity >= 2 and sku.high_demand", outcome="decline")
    await given_rule(shop, "order.quantity == 1 and request.action == 'flash.purchase'", outcome="challenge")
    device = {"X-Device-Token": "d" * 32}
    body = {"buyer": "ann@example.com", "request_id": "r1"}

    declined = await client.post(f"/api/flash/{event_id}/purchase", json=body | {"quantity": 2}, headers=device)
    single = await client.post(f"/api/flash/{event_id}/purchase", json=body | {"request_id": "r2"}, headers=device)
    challenge = the_error(single, 403, "challenge_required")["challenge"]
    solved = device | {"X-Risk-Solution": solve(challenge["token"], challenge["bits"])}
    won = await client.post(f"/api/flash/{event_id}/purchase", json=body | {"request_id": "r2"}, headers=solved)

    the_error(declined, 403, "risk_declined")
    assert won.status_code == 200 and won.json()["result"] == "won", won.text
    assert (await flash.public_event(event_id)).remaining == 2  # only the solved purchase kept its admission


async def test_a_sold_out_flash_sale_answers_sold_out_without_a_decision(
    shop: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    """Risk decides on what could be given away: a purchase the gate refuses needs no decision (issue 15's cost)."""
    sku = await given_sku_with_codes(shop, 10)
    event_id = await given_event(shop, sku, stock=1)
    path = f"/api/flash/{event_id}/purchase"
    won = await client.post(path, json={"buyer": "ann", "request_id": "r1"}, headers={"X-Device-Token": "a" * 32})
    assert won.json()["result"] == "won", won.text
    await given_rule(shop, "request.action == 'flash.purchase'", outcome="decline")
    await shop.risk.log.flush()
    async with shop.db.read() as session:
        decided = len(await recent(session))

    late = await client.post(path, json={"buyer": "bob", "request_id": "r1"}, headers={"X-Device-Token": "b" * 32})

    assert late.json() == {"result": "sold_out"}
    await shop.risk.log.flush()
    async with shop.db.read() as session:
        assert len(await recent(session)) == decided
