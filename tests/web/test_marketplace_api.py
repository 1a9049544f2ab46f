"""A marketplace store pushes its paid orders, signed like the open API, and gets the codes back encrypted for it."""

import json
import secrets
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes, stock_of
from tests.support.marketplace import (
    STORE,
    account_balance,
    given_store,
    given_store_price,
    import_file,
    order_file,
)

from kaquan import ledger
from kaquan.channels import pricing as channels
from kaquan.channels.adapters import load_adapters
from kaquan.channels.agents import code_encryption as agent_crypto
from kaquan.channels.agents import request_signing
from kaquan.channels.marketplace import stores as marketplace
from kaquan.inventory.levels import Stock
from kaquan.inventory.models import Reveal
from kaquan.kit import clock
from kaquan.orders.models import Order
from kaquan.runtime import Runtime


class Store:
    """A marketplace store's system: signs its pushes and opens the codes it gets back."""

    def __init__(self, http: httpx.AsyncClient, store: str, secret: str) -> None:
        self.http = http
        self.store = store
        self.secret = secret

    def headers(
        self, body: bytes, *, key: str | None = None, nonce: str | None = None, at: int | None = None
    ) -> dict[str, str]:
        path = f"/marketplace/v1/{self.store}/orders"
        timestamp, nonce = str(int(time.time()) if at is None else at), nonce or secrets.token_urlsafe(16)
        canonical = request_signing.canonical_string("POST", path, "", body, timestamp, nonce)
        return {
            "X-Kq-Key": key or self.store,
            "X-Kq-Timestamp": timestamp,
            "X-Kq-Nonce": nonce,
            "X-Kq-Signature": request_signing.sign(self.secret, canonical),
            "Content-Type": "application/json",
        }

    async def push(self, payload: dict[str, Any], **signing_options: Any) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.send(body, self.headers(body, **signing_options))

    async def send(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(f"/marketplace/v1/{self.store}/orders", content=body, headers=headers)

    def open(self, order: dict[str, Any]) -> list[str]:
        key = agent_crypto.code_key(self.secret, self.store)
        return [agent_crypto.decrypt_field(key, code["secret"], order["order_no"]) for code in order["codes"]]


def order(marketplace_order_id: str, sku: GivenSku, quantity: int, **extra: Any) -> dict[str, Any]:
    return {"marketplace_order_id": marketplace_order_id, "sku": sku.code, "quantity": quantity, **extra}


async def given_selling_store(
    rt: Runtime, client: httpx.AsyncClient, codes: list[str], *, price_minor: int = 1000, fee_rate_bp: int = 500
) -> tuple[Store, GivenSku]:
    secret = await given_store(rt, fee_rate_bp=fee_rate_bp)
    sku = await given_sku(rt)
    await given_codes(rt, sku, codes)
    await given_store_price(rt, sku, price_minor)
    return Store(client, STORE, secret), sku


def refused(response: httpx.Response, status: int, code: str) -> bool:
    return response.status_code == status and response.json()["error"]["code"] == code


async def snapshot(rt: Runtime, sku: GivenSku) -> tuple[int, int, int, Stock]:
    """Orders, ledger transfers, reveals and stock: what a refused push must leave alone."""
    async with rt.db.read() as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        reveals = (await session.execute(select(func.count()).select_from(Reveal))).scalar_one()
        transfers = (await ledger.check(session)).transfers
    return orders, transfers, reveals, await stock_of(rt, sku)


def test_the_marketplace_adapter_is_found_through_its_entry_point_beside_the_open_api() -> None:
    adapters = {adapter.name: adapter for adapter in load_adapters()}

    assert {"marketplace", "open_api"} <= set(adapters)
    paths = {route.path for route in adapters["marketplace"].router.routes}  # type: ignore[attr-defined]
    assert "/marketplace/v1/{store}/orders" in paths


async def test_a_pushed_order_is_delivered_with_codes_only_the_store_can_open(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    codes = random_codes(5)
    store, sku = await given_selling_store(rt, client, codes, price_minor=1000, fee_rate_bp=500)

    response = await store.push(order("TB-1001", sku, 2, buyer="buyer-42"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in ("marketplace_order_id", "status", "sku", "quantity", "currency")} == {
        "marketplace_order_id": "TB-1001",
        "status": "delivered",
        "sku": sku.code,
        "quantity": 2,
        "currency": "CNY",
    }
    assert (body["unit_price_minor"], body["total_minor"], body["fee_minor"]) == (1000, 2000, 100)
    opened = store.open(body)
    assert len(set(opened)) == 2 and set(opened) <= set(codes)
    assert all(code["card_no"] is None and code["expires_on"] is None for code in body["codes"])
    assert not set(opened) & {code["secret"] for code in body["codes"]}
    with pytest.raises(ValueError, match="does not open"):
        agent_crypto.decrypt_field(
            agent_crypto.code_key(store.secret, "jd"), body["codes"][0]["secret"], body["order_no"]
        )
    async with rt.db.read() as session:
        reveals = list((await session.execute(select(Reveal))).scalars())
        placed = (await session.execute(select(Order))).scalar_one()
    assert [(r.viewer, r.reason, r.units) for r in reveals] == [("marketplace:tmall", marketplace.PUSH_REASON, 2)]
    assert (placed.contact, placed.status) == ("buyer-42", "delivered")


async def test_the_ledger_books_a_receivable_net_of_the_fee_and_balances(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(5), price_minor=1999, fee_rate_bp=600)

    response = await store.push(order("TB-1", sku, 3))

    assert response.status_code == 201
    total, fee = 3 * 1999, 3 * 1999 * 600 // 10_000
    receivable = await account_balance(rt, "receivable:marketplace:tmall:CNY")
    fees = await account_balance(rt, "fees:marketplace:tmall:CNY")
    sales = await account_balance(rt, "sales:marketplace:tmall:CNY")
    assert (receivable, fees, sales) == (total - fee, fee, total)
    assert receivable + fees == sales == response.json()["total_minor"]
    assert response.json()["fee_minor"] == fee
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


async def test_the_same_push_again_returns_the_same_order_and_codes_and_a_different_one_conflicts(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(5))
    first = await store.push(order("TB-1", sku, 2))

    again = await store.push(order("TB-1", sku, 2))
    more = await store.push(order("TB-1", sku, 3))
    other_buyer = await store.push(order("TB-1", sku, 2, buyer="someone else"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order_no"] == first.json()["order_no"]
    assert store.open(again.json()) == store.open(first.json())
    assert again.json()["fee_minor"] == first.json()["fee_minor"]
    assert refused(more, 409, "idempotency_conflict")
    assert refused(other_buyer, 409, "idempotency_conflict")
    assert (await stock_of(rt, sku)).sold == 2
    assert await account_balance(rt, "sales:marketplace:tmall:CNY") == 2000


async def test_a_replay_shows_the_fee_that_was_booked_even_after_the_rate_changed(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(3), price_minor=1000, fee_rate_bp=500)
    first = await store.push(order("TB-1", sku, 1))
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, marketplace.channel_of(STORE), fee_rate_bp=900, actor="test")

    again = await store.push(order("TB-1", sku, 1))
    later = await store.push(order("TB-2", sku, 1))

    assert (first.json()["fee_minor"], again.json()["fee_minor"], later.json()["fee_minor"]) == (50, 50, 90)


async def test_a_pushed_order_and_the_same_line_in_a_file_are_one_order(rt: Runtime, client: httpx.AsyncClient) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(4))
    pushed = await store.push(order("TB-1", sku, 2))

    [line] = await import_file(rt, order_file(f"TB-1,{sku.code},2"))

    assert (line.outcome, line.order_no) == ("replayed", pushed.json()["order_no"])
    assert [code.secret for code in line.codes] == store.open(pushed.json())


async def test_out_of_stock_is_refused_whole_and_changes_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(2))
    before = await snapshot(rt, sku)

    response = await store.push(order("TB-1", sku, 3))

    assert refused(response, 409, "out_of_stock")
    assert await snapshot(rt, sku) == before
    assert (await store.push(order("TB-1", sku, 2))).status_code == 201  # the id was not used up


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong secret", "invalid_signature"),
        ("body changed after signing", "invalid_signature"),
        ("another store's key", "invalid_signature"),
        ("no signature", "missing_signature_header"),
        ("stale timestamp", "timestamp_out_of_window"),
        ("replayed nonce", "nonce_reused"),
        ("unknown store", "unknown_key"),
    ],
)
async def test_a_push_that_fails_its_signature_checks_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, case: str, code: str
) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(3))
    payload = json.dumps(order("TB-1", sku, 1)).encode()
    if case == "replayed nonce":
        nonce = secrets.token_urlsafe(16)
        assert (await store.send(payload, store.headers(payload, nonce=nonce))).status_code == 201
        payload = json.dumps(order("TB-2", sku, 1)).encode()
    before = await snapshot(rt, sku)

    if case == "wrong secret":
        impostor = Store(client, STORE, secrets.token_urlsafe(32))
        response = await impostor.send(payload, impostor.headers(payload))
    elif case == "body changed after signing":
        response = await store.send(payload.replace(b'"quantity": 1', b'"quantity": 2'), store.headers(payload))
    elif case == "another store's key":
        response = await store.send(payload, store.headers(payload, key="jd"))
    elif case == "no signature":
        headers = store.headers(payload)
        del headers["X-Kq-Signature"]
        response = await store.send(payload, headers)
    elif case == "stale timestamp":
        response = await store.send(payload, store.headers(payload, at=int(clock.now().timestamp()) - 301))
    elif case == "replayed nonce":
        response = await store.send(payload, store.headers(payload, nonce=nonce))
    else:
        response = await Store(client, "nobody", store.secret).push(order("TB-1", sku, 1))

    assert refused(response, 401, code), response.text
    assert await snapshot(rt, sku) == before


async def test_after_rotation_only_the_new_secret_signs(rt: Runtime, client: httpx.AsyncClient) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(3))
    async with rt.db.transaction() as session:
        new_secret = await marketplace.rotate_secret(rt.db, session, rt.keyring, STORE, actor="test")

    old = await store.push(order("TB-1", sku, 1))
    rotated = Store(client, STORE, new_secret)
    new = await rotated.push(order("TB-1", sku, 1))

    assert refused(old, 401, "invalid_signature")
    assert new.status_code == 201
    assert len(rotated.open(new.json())) == 1


async def test_a_switched_off_store_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(3))
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, marketplace.channel_of(STORE), active=False, actor="test")

    assert refused(await store.push(order("TB-1", sku, 1)), 403, "store_inactive")


async def test_a_sku_off_the_stores_price_list_is_not_for_sale_there(rt: Runtime, client: httpx.AsyncClient) -> None:
    store, _ = await given_selling_store(rt, client, random_codes(3))
    elsewhere = await given_sku(rt)
    await given_codes(rt, elsewhere, random_codes(2))
    async with rt.db.transaction() as session:
        await channels.set_price(rt.db, session, "api", elsewhere.code, 100, actor="test")

    unlisted = await store.push(order("TB-1", elsewhere, 1))
    unknown = await store.push({"marketplace_order_id": "TB-2", "sku": "NO-SUCH-SKU", "quantity": 1})

    assert refused(unlisted, 404, "sku_not_listed")
    assert refused(unknown, 404, "sku_not_listed")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"marketplace_order_id": "TB 1", "quantity": 1}, 400, "bad_input"),
        ({"marketplace_order_id": "x" * 65, "quantity": 1}, 400, "bad_input"),
        ({"marketplace_order_id": "TB-1", "quantity": 0}, 400, "invalid_quantity"),
        ({"marketplace_order_id": "TB-1", "quantity": 1, "buyer": "b" * 201}, 400, "bad_input"),
        ({"marketplace_order_id": "TB-1", "quantity": 1, "coupon": "x"}, 422, "validation_error"),
        ({"marketplace_order_id": "TB-1", "quantity": "many"}, 422, "validation_error"),
    ],
)
async def test_a_malformed_order_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, payload: dict[str, Any], status: int, code: str
) -> None:
    store, sku = await given_selling_store(rt, client, random_codes(3))
    before = await snapshot(rt, sku)

    response = await store.push({"sku": sku.code, **payload})

    assert refused(response, status, code), response.text
    assert await snapshot(rt, sku) == before
