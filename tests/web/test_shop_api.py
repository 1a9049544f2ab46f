"""The shop's JSON API and the payment notification endpoint, through HTTP.

Every refusal comes in the one error shape, changes nothing, and no response
ever carries a code secret except the buyer's own delivered order.
"""

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes, stock_of
from tests.support.http import Caller, answer_without_request_id, some_ip, the_error

from kaquan.inventory.models import Code
from kaquan.kit.ratelimit import RedisRateLimiter
from kaquan.orders.models import Order
from kaquan.payments.dev import SIGNATURE_HEADER
from kaquan.payments.models import Payment, PaymentCallback
from kaquan.runtime import Runtime

Callback = tuple[dict[str, str], bytes]


async def given_stocked_sku(rt: Runtime, count: int, **options: object) -> tuple[GivenSku, list[str]]:
    """A SKU holding `count` codes whose secrets the test knows."""
    sku = await given_sku(rt, **options)  # type: ignore[arg-type]
    codes = random_codes(count)
    await given_codes(rt, sku, codes)
    return sku, codes


def shown_codes(response: httpx.Response, codes: list[str]) -> list[str]:
    return [code for code in codes if code in response.text]


async def order_status(rt: Runtime, number: str) -> str:
    async with rt.db.read() as session:
        return (await session.execute(select(Order.status).where(Order.number == number))).scalar_one()


async def count_of(rt: Runtime, table: type[Order] | type[Payment]) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def callbacks(rt: Runtime) -> list[tuple[bool, str]]:
    """(accepted, outcome) of every logged payment callback, oldest first."""
    async with rt.db.read() as session:
        rows = await session.execute(
            select(PaymentCallback.accepted, PaymentCallback.outcome).order_by(PaymentCallback.id)
        )
        return [(accepted, outcome) for accepted, outcome in rows]


async def codes_sold(rt: Runtime, sku: GivenSku) -> int:
    async with rt.db.read() as session:
        stmt = select(func.count()).select_from(Code).where(Code.sku_id == sku.id, Code.status == "sold")
        return (await session.execute(stmt)).scalar_one()


CLIENT_TOKEN = "this-test-clients-own-token"
CLIENT = {"X-Client-Token": CLIENT_TOKEN}


def keyed(key: str, *, token: str = CLIENT_TOKEN) -> dict[str, str]:
    """The headers of an order attempt: the caller's idempotency key and its own client token."""
    return {"Idempotency-Key": key, "X-Client-Token": token}


async def create_order(
    client: httpx.AsyncClient, sku: GivenSku, quantity: int = 1, *, key: str | None = None, token: str = CLIENT_TOKEN
) -> dict[str, Any]:
    response = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": quantity},
        headers=keyed(key or secrets.token_hex(8), token=token),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def token_of(order: dict[str, Any]) -> str:
    return str(order["pay_url"]).rsplit("/", 1)[1]


def signed_callback(rt: Runtime, order: dict[str, Any]) -> Callback:
    """What the dev gateway posts when this order's buyer pays in full."""
    return rt.dev_gateway.notification(token_of(order), order["total_minor"], order["currency"], secrets.token_hex(6))


async def notify(client: httpx.AsyncClient, callback: Callback, *, gateway: str = "dev") -> httpx.Response:
    headers, body = callback
    return await client.post(f"/payments/{gateway}/notify", content=body, headers=headers)


# Creating orders --------------------------------------------------------------------------------------


async def test_an_order_is_created_with_its_number_lookup_secret_pay_url_and_the_servers_total(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 5, price_minor=1990)

    response = await client.post("/api/orders", json={"sku": sku.code, "quantity": 3}, headers=keyed("order-1"))

    assert response.status_code == 201
    order = response.json()
    assert order["status"] == "pending_payment"
    assert (order["sku_id"], order["quantity"]) == (sku.id, 3)
    assert (order["unit_price_minor"], order["total_minor"], order["currency"]) == (1990, 5970, "CNY")
    assert order["lookup_secret"] == rt.order_keys.lookup_secret(order["number"])
    async with rt.db.read() as session:
        payment = (await session.execute(select(Payment))).scalar_one()
    assert order["pay_url"] == f"/pay/{payment.token}"
    assert (payment.amount_minor, payment.status) == (5970, "pending")
    assert order["codes"] == []
    assert shown_codes(response, codes) == []
    assert (await stock_of(rt, sku)).reserved == 3


async def test_an_order_can_name_its_sku_by_id(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    response = await client.post("/api/orders", json={"sku": str(sku.id), "quantity": 1}, headers=keyed("k"))

    assert response.status_code == 201
    assert response.json()["sku_id"] == sku.id


@pytest.mark.parametrize("field", ["unit_price_minor", "total_minor", "price"])
async def test_a_price_sent_by_the_client_is_refused(rt: Runtime, client: httpx.AsyncClient, field: str) -> None:
    sku, _ = await given_stocked_sku(rt, 5, price_minor=1990)

    response = await client.post("/api/orders", json={"sku": sku.code, "quantity": 1, field: 1}, headers=keyed("cheap"))

    details = the_error(response, 422, "validation_error")
    assert [p["field"] for p in details["problems"]] == [f"body.{field}"]
    assert await count_of(rt, Order) == 0
    assert (await stock_of(rt, sku)).reserved == 0


async def test_the_same_key_and_body_give_the_same_order_and_hold_stock_once(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    first = await create_order(client, sku, 2, key="retry-me")
    second = await create_order(client, sku, 2, key="retry-me")

    assert second["number"] == first["number"]
    assert second["lookup_secret"] == first["lookup_secret"]
    assert second["pay_url"] == first["pay_url"]
    assert await count_of(rt, Order) == 1
    assert await count_of(rt, Payment) == 1
    assert (await stock_of(rt, sku)).reserved == 2


async def test_the_same_key_with_a_different_body_is_an_idempotency_conflict(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    first = await create_order(client, sku, 2, key="once")

    response = await client.post("/api/orders", json={"sku": sku.code, "quantity": 3}, headers=keyed("once"))

    assert the_error(response, 409, "idempotency_conflict") == {"idempotency_key": "once"}
    assert first["number"] not in response.text
    assert await count_of(rt, Order) == 1
    assert (await stock_of(rt, sku)).reserved == 2


# An idempotency key belongs to the client that chose it ---------------------------------------------


async def test_an_honest_retry_proves_itself_with_its_client_token_even_from_another_address(
    rt: Runtime, caller_at: Caller
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    async with caller_at(some_ip()) as at_home:
        first = await create_order(at_home, sku, 2, key="retry-on-the-train")
    async with caller_at(some_ip()) as on_the_train:
        retried = await create_order(on_the_train, sku, 2, key="retry-on-the-train")

    assert (retried["number"], retried["lookup_secret"], retried["pay_url"]) == (
        first["number"],
        first["lookup_secret"],
        first["pay_url"],
    )
    assert await count_of(rt, Order) == 1
    assert await count_of(rt, Payment) == 1


async def test_another_client_replaying_a_key_and_body_learns_nothing_of_the_first_order(
    rt: Runtime, caller_at: Caller
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    async with caller_at(some_ip()) as buyer:
        theirs = await create_order(buyer, sku, 2, key="seen-on-a-cached-page")

    async with caller_at(some_ip()) as replayer:
        replay = await replayer.post(
            "/api/orders",
            json={"sku": sku.code, "quantity": 2},
            headers=keyed("seen-on-a-cached-page", token="the-replayers-own-token"),
        )

    assert replay.status_code == 201, replay.text
    for secret in (theirs["number"], theirs["lookup_secret"], token_of(theirs)):
        assert secret not in replay.text
        assert secret not in str(replay.headers)
    assert replay.json()["lookup_secret"] == rt.order_keys.lookup_secret(replay.json()["number"])
    assert await count_of(rt, Order) == 2
    assert await order_status(rt, theirs["number"]) == "pending_payment"


async def test_a_different_body_under_another_clients_key_does_not_tell_that_the_key_is_in_use(
    rt: Runtime, caller_at: Caller
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    async with caller_at(some_ip()) as buyer:
        theirs = await create_order(buyer, sku, 2, key="in-use")

    async with caller_at(some_ip()) as prober:
        probe = await prober.post(
            "/api/orders", json={"sku": sku.code, "quantity": 1}, headers=keyed("in-use", token="the-probers-token")
        )
        fresh = await prober.post(
            "/api/orders", json={"sku": sku.code, "quantity": 1}, headers=keyed("never-used", token="the-probers-token")
        )

    assert probe.status_code == fresh.status_code == 201, probe.text
    assert set(probe.json()) == set(fresh.json())
    assert theirs["number"] not in probe.text
    assert (await stock_of(rt, sku)).reserved == 4


async def test_an_order_without_a_client_token_is_a_validation_error_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    missing = await client.post("/api/orders", json={"sku": sku.code, "quantity": 1}, headers={"Idempotency-Key": "k"})
    short = await client.post("/api/orders", json={"sku": sku.code, "quantity": 1}, headers=keyed("k", token="short"))

    for refused in (missing, short):
        details = the_error(refused, 422, "validation_error")
        assert [p["field"] for p in details["problems"]] == ["header.x-client-token"]
    assert await count_of(rt, Order) == 0
    assert (await stock_of(rt, sku)).reserved == 0


async def test_an_order_without_an_idempotency_key_is_a_validation_error(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    response = await client.post("/api/orders", json={"sku": sku.code, "quantity": 1}, headers=CLIENT)

    details = the_error(response, 422, "validation_error")
    assert [p["field"] for p in details["problems"]] == ["header.idempotency-key"]
    assert await count_of(rt, Order) == 0


@pytest.mark.parametrize("quantity", [0, -5, 4], ids=["zero", "negative", "above-the-cap"])
async def test_a_quantity_outside_one_to_the_cap_is_invalid_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, quantity: int
) -> None:
    sku, _ = await given_stocked_sku(rt, 5, max_per_order=3)
    before = await stock_of(rt, sku)

    response = await client.post("/api/orders", json={"sku": sku.code, "quantity": quantity}, headers=keyed("q"))

    assert the_error(response, 400, "invalid_quantity") == {"quantity": quantity, "max": 3}
    assert await stock_of(rt, sku) == before
    assert await count_of(rt, Order) == 0


async def test_an_unknown_sku_or_too_few_codes_create_no_order(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 2)

    unknown = await client.post("/api/orders", json={"sku": "NOPE", "quantity": 1}, headers=keyed("a"))
    too_many = await client.post("/api/orders", json={"sku": sku.code, "quantity": 3}, headers=keyed("b"))

    assert the_error(unknown, 404, "sku_not_found") == {"sku": "NOPE"}
    assert the_error(too_many, 409, "out_of_stock") == {"sku_id": sku.id, "wanted": 3, "available": 2}
    assert await count_of(rt, Order) == 0
    assert await count_of(rt, Payment) == 0


# Looking an order up -------------------------------------------------------------------------------------


async def test_a_lookup_shows_the_codes_only_once_the_order_is_paid(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku, 2)
    credentials = {"number": order["number"], "secret": order["lookup_secret"]}

    unpaid = await client.post("/api/orders/lookup", json=credentials)
    await notify(client, signed_callback(rt, order))
    paid = await client.post("/api/orders/lookup", json=credentials)

    assert unpaid.status_code == 200
    assert unpaid.json()["status"] == "pending_payment"
    assert unpaid.json()["codes"] == []
    assert shown_codes(unpaid, codes) == []
    assert paid.status_code == 200
    assert paid.json()["status"] == "delivered"
    delivered = [code["secret"] for code in paid.json()["codes"]]
    assert len(delivered) == 2
    assert set(delivered) <= set(codes)
    assert paid.json()["lookup_secret"] is None


async def test_a_wrong_secret_and_an_unknown_number_get_the_same_not_found(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku)
    await notify(client, signed_callback(rt, order))
    unknown = str(int(order["number"]) + 1)

    wrong_secret = await client.post(
        "/api/orders/lookup", json={"number": order["number"], "secret": rt.order_keys.lookup_secret(unknown)}
    )
    unknown_number = await client.post(
        "/api/orders/lookup", json={"number": unknown, "secret": rt.order_keys.lookup_secret(unknown)[::-1]}
    )

    assert the_error(wrong_secret, 404, "order_not_found") == {}
    assert answer_without_request_id(wrong_secret) == answer_without_request_id(unknown_number)
    assert shown_codes(wrong_secret, codes) == []


async def test_lookups_are_throttled_per_ip_address(
    rt: Runtime, caller_at: Caller, redis_or_none: Redis | None
) -> None:
    if redis_or_none is not None:
        rt.limiter = RedisRateLimiter(redis_or_none)
    assert rt.settings.lookup_per_minute == 10
    sku, _ = await given_stocked_sku(rt, 5)
    async with caller_at(some_ip()) as buyer:
        order = await create_order(buyer, sku)
    credentials = {"number": order["number"], "secret": order["lookup_secret"]}

    async with caller_at(some_ip()) as guesser, caller_at(some_ip()) as neighbour:
        guesses = [
            await guesser.post("/api/orders/lookup", json={**credentials, "secret": f"GUESS-{n}"}) for n in range(10)
        ]
        eleventh = await guesser.post("/api/orders/lookup", json=credentials)
        elsewhere = await neighbour.post("/api/orders/lookup", json=credentials)

    assert [g.status_code for g in guesses] == [404] * 10
    details = the_error(eleventh, 429, "rate_limited")
    assert 1 <= int(eleventh.headers["retry-after"]) <= 60
    assert details == {"retry_after": int(eleventh.headers["retry-after"])}
    assert order["number"] not in eleventh.text
    assert elsewhere.status_code == 200


# Payment notifications -------------------------------------------------------------------------------------


async def test_a_correctly_signed_callback_delivers_the_order(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku, 2)

    response = await notify(client, signed_callback(rt, order))

    assert response.status_code == 200
    assert response.json() == {"ok": True, "outcome": "delivered"}
    assert shown_codes(response, codes) == []
    assert await order_status(rt, order["number"]) == "delivered"
    assert await codes_sold(rt, sku) == 2
    assert await callbacks(rt) == [(True, "delivered")]


async def test_the_same_callback_again_is_a_harmless_duplicate(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku, 2)
    callback = signed_callback(rt, order)
    await notify(client, callback)

    again = await notify(client, callback)

    assert again.status_code == 200
    assert again.json() == {"ok": True, "outcome": "duplicate"}
    assert await order_status(rt, order["number"]) == "delivered"
    assert await codes_sold(rt, sku) == 2
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (3, 0, 2)
    assert await callbacks(rt) == [(True, "delivered"), (True, "duplicate")]


def tampered_amount(rt: Runtime, order: dict[str, Any]) -> Callback:
    """A genuine callback whose amount was lowered after it was signed."""
    headers, body = signed_callback(rt, order)
    signed_amount = f'"amount_minor":{order["total_minor"]}'.encode()
    assert signed_amount in body
    return headers, body.replace(signed_amount, f'"amount_minor":{order["total_minor"] - 1}'.encode())


def signed_wrong_amount(rt: Runtime, order: dict[str, Any]) -> Callback:
    """Correctly signed, but for less money than the order costs."""
    return rt.dev_gateway.notification(token_of(order), order["total_minor"] - 1, order["currency"], "txn-short")


def signed_wrong_currency(rt: Runtime, order: dict[str, Any]) -> Callback:
    return rt.dev_gateway.notification(token_of(order), order["total_minor"], "USD", "txn-dollars")


def stale(rt: Runtime, order: dict[str, Any]) -> Callback:
    """Correctly signed, an hour ago: a replay."""
    _, body = signed_callback(rt, order)
    return {SIGNATURE_HEADER: rt.dev_gateway.sign(body, at=int(time.time()) - 3600)}, body


def unsigned(rt: Runtime, order: dict[str, Any]) -> Callback:
    _, body = signed_callback(rt, order)
    return {}, body


def for_an_unknown_payment(rt: Runtime, order: dict[str, Any]) -> Callback:
    return rt.dev_gateway.notification("no-such-token", order["total_minor"], order["currency"], "txn-unknown")


REFUSED_CALLBACKS = [
    pytest.param(tampered_amount, 400, "invalid_signature", id="tampered-after-signing"),
    pytest.param(signed_wrong_amount, 400, "amount_mismatch", id="wrong-amount"),
    pytest.param(signed_wrong_currency, 400, "amount_mismatch", id="wrong-currency"),
    pytest.param(stale, 400, "callback_stale", id="stale"),
    pytest.param(unsigned, 400, "invalid_signature", id="unsigned"),
    pytest.param(for_an_unknown_payment, 404, "payment_not_found", id="unknown-payment"),
]


@pytest.mark.parametrize(("forge", "status", "code"), REFUSED_CALLBACKS)
async def test_a_refused_callback_changes_nothing_and_is_logged_as_refused(
    rt: Runtime,
    client: httpx.AsyncClient,
    forge: Callable[[Runtime, dict[str, Any]], Callback],
    status: int,
    code: str,
) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku, 2)

    response = await notify(client, forge(rt, order))

    the_error(response, status, code)
    assert shown_codes(response, codes) == []
    assert await order_status(rt, order["number"]) == "pending_payment"
    async with rt.db.read() as session:
        payment = (await session.execute(select(Payment))).scalar_one()
    assert (payment.status, payment.gateway_txn_id) == ("pending", None)
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (3, 2, 0)
    assert await callbacks(rt) == [(False, code)]


async def test_a_refused_callback_does_not_spoil_the_genuine_one(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku, 2)
    await notify(client, signed_wrong_amount(rt, order))

    genuine = await notify(client, signed_callback(rt, order))

    assert genuine.json() == {"ok": True, "outcome": "delivered"}
    assert await callbacks(rt) == [(False, "amount_mismatch"), (True, "delivered")]


async def test_a_callback_to_an_unknown_gateway_is_not_found(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    order = await create_order(client, sku)

    response = await notify(client, signed_callback(rt, order), gateway="nosuchpay")

    assert the_error(response, 404, "payment_not_found") == {"gateway": "nosuchpay"}
    assert await order_status(rt, order["number"]) == "pending_payment"


# Secrets ------------------------------------------------------------------------------------------


async def test_no_response_carries_a_code_secret_except_the_buyers_delivered_order(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 3)
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    client.event_hooks = {"response": [keep]}
    order = await create_order(client, sku, 2, key="journey")
    await create_order(client, sku, 2, key="journey")
    await client.post("/api/orders", json={"sku": sku.code, "quantity": 1}, headers=keyed("journey"))
    credentials = {"number": order["number"], "secret": order["lookup_secret"]}
    await client.post("/api/orders/lookup", json=credentials)
    await notify(client, tampered_amount(rt, order))
    callback = signed_callback(rt, order)
    await notify(client, callback)
    await notify(client, callback)
    await client.post("/api/orders/lookup", json={**credentials, "secret": "WRONG"})
    await client.get(str(order["pay_url"]))
    await client.post(str(order["pay_url"]), data={"method": "dev:page"})
    await client.post(str(order["pay_url"]).replace("/pay/", "/pay/dev/"))
    await client.get(f"/orders/{order['number']}")
    await client.get("/")
    await client.post("/api/orders/lookup", json=credentials)

    revealing = [(r.request.method, r.request.url.path, r.status_code) for r in seen if shown_codes(r, codes)]
    assert len(seen) == 14
    assert revealing == [("POST", "/api/orders/lookup", 200)]
    assert seen[-1] is next(r for r in seen if shown_codes(r, codes))
