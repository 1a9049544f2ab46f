"""The flash-sale HTTP contract: buyers' answers, tickets, load shedding, errors; the admin API.

A buyer always gets a clear answer: won (an order to pay), sold out, limit reached,
or queued with a ticket; a full queue is a 503 with Retry-After; bad input is a
4xx in the one error shape and changes nothing; never a 500.
"""

import asyncio
import secrets
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from tests.support.builders import given_sku_with_codes, stock_of
from tests.support.buyers import verified_token
from tests.support.flash import given_event, hold_commits, new_flash
from tests.support.http import the_error
from tests.support.identity import HeadersFor
from tests.support.paying import dev_pay_link

from kaquan.audit.models import AuditEntry
from kaquan.flashsale.gate import Gate, RedisGate
from kaquan.flashsale.purchase import FlashSale
from kaquan.kit import clock
from kaquan.orders.models import Order
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def buy(
    client: httpx.AsyncClient,
    event_id: int,
    buyer: str,
    *,
    quantity: int = 1,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"buyer": buyer, "quantity": quantity, "request_id": request_id or secrets.token_hex(8)}
    return await client.post(f"/api/flash/{event_id}/purchase", json=body, headers=headers)


async def final(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """The answer to a purchase, polling its ticket while it is queued (202)."""
    for _ in range(3000):
        if response.status_code != 202:
            return response
        assert response.headers["Retry-After"] == "1"
        await asyncio.sleep(0.01)
        response = await client.get(f"/api/flash/tickets/{response.json()['ticket']}")
    raise AssertionError("the purchase stayed queued")


async def test_a_winner_gets_an_order_to_pay_and_then_its_codes(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=2, price_minor=500)

    response = await buy(client, event_id, "ann@example.com", quantity=2)

    assert response.status_code == 200, response.text
    won = response.json()
    assert set(won) == {
        "result",
        "order_no",
        "lookup_secret",
        "pay_url",
        "quantity",
        "total_minor",
        "currency",
        "pay_before",
    }
    assert (won["result"], won["quantity"], won["total_minor"], won["currency"]) == ("won", 2, 1000, "CNY")
    paid = await client.post(await dev_pay_link(client, won["pay_url"]))
    assert paid.status_code == 303
    order = await client.post("/api/orders/lookup", json={"number": won["order_no"], "secret": won["lookup_secret"]})
    assert order.json()["status"] == "delivered"
    assert len({code["secret"] for code in order.json()["codes"]}) == 2


async def test_sold_out_and_limit_reached_are_plain_answers(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=1, limit=1)
    assert (await buy(client, event_id, "ann")).json()["result"] == "won"

    again = await buy(client, event_id, "ann")
    other = await buy(client, event_id, "bob")

    assert (again.status_code, again.json()) == (200, {"result": "limit_reached"})
    assert (other.status_code, other.json()) == (200, {"result": "sold_out"})


async def test_a_slow_commit_answers_202_with_a_ticket_to_poll(
    rt: Runtime, gate: Gate, client: httpx.AsyncClient
) -> None:
    rt.flash = new_flash(rt, gate, flash_wait_s=0)
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=2)
    try:
        queued = await buy(client, event_id, "ann", request_id="r-1")

        assert queued.status_code == 202
        assert queued.json()["result"] == "queued"
        answered = await final(client, queued)
        assert answered.status_code == 200
        assert answered.json()["result"] == "won"
        retried = await final(client, await buy(client, event_id, "ann", request_id="r-1"))
        assert retried.json()["order_no"] == answered.json()["order_no"]
    finally:
        await rt.flash.close()


async def test_a_full_queue_is_a_503_with_retry_after_never_a_hang(
    rt: Runtime, gate: Gate, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.flash = new_flash(rt, gate, flash_queue_max=1, flash_wait_s=0.01)
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, per_device_limit=5)  # three buyers share one test client
    release = hold_commits(monkeypatch)
    try:
        first, second = await buy(client, event_id, "ann"), await buy(client, event_id, "bob")
        shed = await buy(client, event_id, "cat")

        assert (first.status_code, second.status_code) == (202, 202)
        details = the_error(shed, 503, "busy")
        assert details["retry_after"] >= 1
        assert shed.headers["Retry-After"] == str(details["retry_after"])
        release.set()
        assert (await final(client, first)).json()["result"] == "won"
        assert (await final(client, second)).json()["result"] == "won"
    finally:
        release.set()
        await rt.flash.close()


async def test_bad_purchases_are_4xx_and_change_nothing(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=2)
    over = await given_event(rt, sku, stock=1, lasts_s=10)
    later = await given_event(rt, sku, stock=1, starts_in_s=600)
    app_only = await given_event(rt, sku, stock=1, channel="app")
    clock.travel(11)
    before = await stock_of(rt, sku)

    the_error(await buy(client, event_id, "ann", quantity=0), 400, "invalid_quantity")
    assert the_error(await buy(client, event_id, "ann", quantity=10**15), 400, "invalid_quantity")["max"] == 2
    the_error(await buy(client, event_id, "   "), 400, "bad_input")
    the_error(await client.post(f"/api/flash/{event_id}/purchase", json={"request_id": "r"}), 422, "validation_error")
    the_error(
        await client.post(f"/api/flash/{event_id}/purchase", json={"buyer": "a", "request_id": "r", "price": 1}),
        422,
        "validation_error",
    )
    the_error(await buy(client, 9999, "ann"), 404, "event_not_found")
    the_error(
        await client.post("/api/flash/abc/purchase", json={"buyer": "a", "request_id": "r"}), 422, "validation_error"
    )
    the_error(await buy(client, over, "ann"), 409, "event_ended")
    the_error(await buy(client, later, "ann"), 409, "event_not_started")
    the_error(await buy(client, app_only, "ann"), 403, "channel_not_allowed")
    the_error(await client.get("/api/flash/tickets/1.abc.def"), 404, "ticket_not_found")
    assert await stock_of(rt, sku) == before


async def test_requests_are_throttled_per_ip(rt: Runtime, flash: FlashSale, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5)
    rt.settings.flash_per_ip_per_minute = 3

    answers = [await buy(client, event_id, f"buyer-{n}") for n in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    details = the_error(answers[3], 429, "rate_limited")
    assert answers[3].headers["Retry-After"] == str(details["retry_after"])


async def test_a_small_storm_over_http_sells_exactly_the_allotment(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 40)
    # Every buyer of this storm comes from one address, most through one cookie jar: the storm is about the allotment.
    event_id = await given_event(rt, sku, stock=20, limit=1, per_ip_limit=100, per_device_limit=100)

    responses = await asyncio.gather(*(buy(client, event_id, f"buyer-{n % 30}") for n in range(60)))

    assert {r.status_code for r in responses} == {200}
    results = Counter(r.json()["result"] for r in responses)
    assert results["won"] == 20
    assert len({r.json()["order_no"] for r in responses if r.json()["result"] == "won"}) == 20
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved) == (20, 20)
    assert stock.adds_up


async def test_the_public_event_shows_what_is_left(rt: Runtime, flash: FlashSale, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, price_minor=199)
    await buy(client, event_id, "ann")

    shown = (await client.get(f"/api/flash/{event_id}")).json()

    assert (shown["status"], shown["price_minor"], shown["remaining"], shown["per_buyer_limit"]) == ("live", 199, 4, 1)


# --- the admin API -----------------------------------------------------------------------------


def _event_body(sku: str, **changes: object) -> dict[str, object]:
    now = clock.now()
    body: dict[str, object] = {
        "sku": sku,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "stock": 4,
        "price_minor": 100,
        "per_buyer_limit": 1,
    }
    return body | changes


async def test_an_operator_runs_an_event_through_the_admin_api(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    operator = await headers_for("operator", username="ops")

    created = await client.post("/admin/api/flash/events", json=_event_body(sku.code), headers=operator)
    assert created.status_code == 201, created.text
    event = created.json()
    assert (event["status"], event["allotted"]) == ("live", 4)
    actor = event["created_by"]
    assert actor.startswith("ops ")
    await buy(client, event["id"], "ann")
    listed = await client.get("/admin/api/flash/events", headers=operator)
    detail = await client.get(f"/admin/api/flash/events/{event['id']}", headers=operator)
    reconciled = await client.post(f"/admin/api/flash/events/{event['id']}/reconcile", headers=operator)
    ended = await client.post(f"/admin/api/flash/events/{event['id']}/end", headers=operator)

    assert [e["id"] for e in listed.json()] == [event["id"]]
    counters = {k: detail.json()[k] for k in ("sold", "purchases", "held", "gate_tokens", "gate_open")}
    assert counters == {"sold": 1, "purchases": 1, "held": 3, "gate_tokens": 3, "gate_open": True}
    assert reconciled.json()["gate_tokens"] == 3
    assert (ended.json()["status"], ended.json()["released"]) == ("ended", 3)
    assert (await stock_of(rt, sku)).available == 9
    async with rt.db.read() as session:
        actions = list((await session.execute(select(AuditEntry.action, AuditEntry.actor))).all())
    assert ("flashsale.event_created", actor) in actions
    assert ("flashsale.event_ended", actor) in actions


async def test_the_admin_api_refuses_bad_events_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    before = await stock_of(rt, sku)
    url = "/admin/api/flash/events"

    the_error(await client.post(url, json=_event_body(sku.code, stock=11), headers=admin_headers), 409, "out_of_stock")
    naive = _event_body(sku.code, starts_at="2030-01-01T00:00:00")
    the_error(await client.post(url, json=naive, headers=admin_headers), 422, "validation_error")
    the_error(
        await client.post(url, json=_event_body(sku.code, stock=0), headers=admin_headers), 422, "validation_error"
    )
    the_error(await client.post(url, json=_event_body("NOPE"), headers=admin_headers), 404, "sku_not_found")
    the_error(await client.post(f"{url}/77/end", headers=admin_headers), 404, "event_not_found")
    assert (await client.get(url, headers=admin_headers)).json() == []
    assert await stock_of(rt, sku) == before


async def test_only_flash_sale_writers_may_change_events(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    auditor = await headers_for("auditor")
    support = await headers_for("support")

    the_error(
        await client.post("/admin/api/flash/events", json=_event_body(sku.code), headers=auditor), 403, "forbidden"
    )
    assert (await client.get("/admin/api/flash/events", headers=auditor)).status_code == 200
    the_error(await client.get("/admin/api/flash/events", headers=support), 403, "forbidden")
    the_error(await client.get("/admin/api/flash/events"), 401, "unauthorized")


async def test_a_gate_that_cannot_be_reached_is_a_503_never_a_500(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5)
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    rt.flash = new_flash(rt, RedisGate(unreachable))
    try:
        response = await buy(client, event_id, "ann")

        details = the_error(response, 503, "busy")
        assert response.headers["Retry-After"] == str(details["retry_after"])
        assert (await stock_of(rt, sku)).available == 5
    finally:
        await rt.flash.close()
        await unreachable.aclose()


# --- a purchase belongs to its client; limits count what a buyer cannot mint for free ------------


def another_client(rt: Runtime, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """A second client of the same server: its own cookie jar (a stranger's browser), its own address."""
    transport = httpx.ASGITransport(app=create_app(rt=rt), client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


async def test_a_replay_from_another_client_learns_nothing_of_the_first_purchase(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=3)
    won = (await buy(client, event_id, "ann", request_id="r-1")).json()
    assert won["result"] == "won"
    assert "kq_device" in client.cookies

    async with another_client(rt) as stranger, another_client(rt) as other_stranger:
        other_body = await buy(stranger, event_id, "ann", quantity=2, request_id="r-1")
        same_body = await buy(other_stranger, event_id, "ann", request_id="r-1")

    # Neither the order, nor its secret, nor that the request exists: the stranger's purchases are its own.
    assert other_body.status_code == 200
    assert other_body.json()["result"] == "won"
    assert other_body.json()["order_no"] != won["order_no"]
    assert (same_body.status_code, same_body.json()) == (200, {"result": "limit_reached"})
    retried = await buy(client, event_id, "ann", request_id="r-1")
    assert (retried.json()["order_no"], retried.json()["lookup_secret"]) == (won["order_no"], won["lookup_secret"])


async def test_a_ticket_answers_only_the_client_it_was_issued_to(
    rt: Runtime, gate: Gate, client: httpx.AsyncClient
) -> None:
    rt.flash = new_flash(rt, gate, flash_wait_s=0)
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=2)
    try:
        queued = await buy(client, event_id, "ann")
        assert queued.status_code == 202
        ticket = queued.json()["ticket"]
        answered = await final(client, queued)
        assert answered.json()["result"] == "won"

        async with another_client(rt) as stranger:
            stolen = await stranger.get(f"/api/flash/tickets/{ticket}")
            forged = await stranger.get(
                f"/api/flash/tickets/{ticket}", headers={"X-Device-Token": secrets.token_urlsafe(32)}
            )

        for response in (stolen, forged):
            the_error(response, 404, "ticket_not_found")
            assert answered.json()["lookup_secret"] not in response.text
    finally:
        await rt.flash.close()


async def test_made_up_buyer_strings_win_once_when_the_event_requires_a_verified_contact(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 20)
    open_to_anyone = await given_event(rt, sku, stock=5, verified=False, per_ip_limit=100, per_device_limit=100)
    verified_only = await given_event(rt, sku, stock=5, verified=True, per_ip_limit=100, per_device_limit=100)

    # The attack: five made-up buyer strings are five buyers where nothing is verified.
    attack = [(await buy(client, open_to_anyone, f"scalper-{n}")).json()["result"] for n in range(5)]
    assert attack == ["won"] * 5

    refused = await buy(client, verified_only, "scalper-0")
    the_error(refused, 401, "buyer_verification_required")
    token = await verified_token(rt, client, "Scalper@Example.com")
    client.cookies.delete("kq_buyer")  # the bearer alone proves it
    bearer = {"Authorization": f"Bearer {token}"}
    body = {"quantity": 1}
    answers = [
        await client.post(
            f"/api/flash/{verified_only}/purchase",
            json=body | {"buyer": f"scalper-{n}", "request_id": f"r-{n}"},
            headers=bearer,
        )
        for n in range(5)
    ]

    assert [a.json()["result"] for a in answers] == ["won"] + ["limit_reached"] * 4
    async with rt.db.read() as session:
        contacts = set(
            (await session.execute(select(Order.contact).where(Order.source == f"flash:{verified_only}"))).scalars()
        )
    assert contacts == {"scalper@example.com"}


async def test_the_buyer_cookie_set_by_verification_is_enough_to_buy(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, verified=True)
    await verified_token(rt, client, "+86 138 0013 8000")

    won = await buy(client, event_id, "whatever")

    assert won.json()["result"] == "won"
    forged = {"Authorization": "Bearer kqb1.eyJjIjoiYUBiLmNvIiwiZXhwIjo5OTk5OTk5OTk5fQ.forged"}
    async with another_client(rt) as stranger:
        the_error(
            await stranger.post(
                f"/api/flash/{event_id}/purchase", json={"buyer": "a@b.co", "request_id": "x"}, headers=forged
            ),
            401,
            "buyer_verification_required",
        )


async def test_an_address_is_held_to_its_limit_over_http_whatever_devices_it_shows(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=2, per_device_limit=10)
    before = await stock_of(rt, sku)

    async with another_client(rt, ip="203.0.113.9") as bot:
        answers = [
            (await buy(bot, event_id, f"bot-{n}", headers={"X-Device-Token": secrets.token_urlsafe(32)})).json()
            for n in range(4)
        ]
    elsewhere = await buy(client, event_id, "ann")

    assert [a["result"] for a in answers] == ["won", "won", "limit_reached", "limit_reached"]
    assert elsewhere.json()["result"] == "won"
    assert (await stock_of(rt, sku)).reserved == before.reserved  # the event's holding counts as reserved either way


async def test_a_malformed_device_token_is_refused_and_changes_nothing(
    rt: Runtime, flash: FlashSale, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5)
    before = await stock_of(rt, sku)

    refused = await buy(client, event_id, "ann", headers={"X-Device-Token": "short"})

    the_error(refused, 400, "bad_input")
    assert await stock_of(rt, sku) == before
    async with rt.db.read() as session:
        assert (await session.execute(select(Order.id))).first() is None
