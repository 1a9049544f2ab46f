"""Who may call the open API, and what a refused or abusive request changes: nothing.

Every request here is built by hand (signed with `kaquan.channels.agents.request_signing`) and sent to
the real app, so one header, the path, the query or the body can be tampered with at a
time. Each refusal is checked twice: its status and stable code, and that the agent's
balance, the SKU's stock, the orders and the ledger are exactly as before. Where a
refusal must not spend the nonce, the honest request is sent afterwards with that same
nonce and goes through.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from tests.support.agents import GivenAgent, given_agent, given_price
from tests.support.builders import GivenSku, given_sku_with_codes, stock_of
from tests.support.redis import worker_redis_url

from kaquan import ledger
from kaquan import runtime as runtime_module
from kaquan.catalog.models import Sku
from kaquan.channels import pricing as channels
from kaquan.channels.agents import accounts as agents
from kaquan.channels.agents import code_encryption as agent_crypto
from kaquan.channels.agents import request_signing
from kaquan.channels.agents.authentication import DatabaseNonces, RedisNonces
from kaquan.inventory.levels import Stock
from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.ledger.models import LedgerTransfer
from kaquan.orders.models import Order
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

PRICE = 1_000
DEPOSIT = 10_000
ORDERS = "/open/v1/orders"


# --- the world a refusal must leave alone -------------------------------------------------------


@dataclass(frozen=True)
class World:
    balance_minor: int
    stock: Stock
    orders: int
    transfers: int


async def world(rt: Runtime, agent: GivenAgent, sku: GivenSku) -> World:
    async with rt.db.read() as session:
        account_id = (await agents.get_agent(session, agent.id)).account_id
        balance = (await ledger.balance(session, account_id)).balance_minor
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        transfers = (await session.execute(select(func.count()).select_from(LedgerTransfer))).scalar_one()
    return World(balance, await stock_of(rt, sku), orders, transfers)


# --- hand-made signed requests ------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """One request exactly as it goes on the wire: method, path, raw query, body bytes and headers."""

    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]

    def without(self, header: str) -> "Signed":
        return replace(self, headers={k: v for k, v in self.headers.items() if k != header})

    def with_header(self, header: str, value: str) -> "Signed":
        return replace(self, headers={**self.headers, header: value})


def sign(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> Signed:
    timestamp = timestamp if timestamp is not None else str(int(clock.now().timestamp()))
    nonce = nonce if nonce is not None else secrets.token_urlsafe(16)
    canonical = request_signing.canonical_string(method, path, query, body, timestamp, nonce)
    headers = {
        request_signing.KEY_HEADER: key_id,
        request_signing.TIMESTAMP_HEADER: timestamp,
        request_signing.NONCE_HEADER: nonce,
        request_signing.SIGNATURE_HEADER: request_signing.sign(secret, canonical),
    }
    if body:
        headers["Content-Type"] = "application/json"
    return Signed(method, path, query, body, headers)


def order_body(out_order_no: str, sku: str, quantity: int = 1, **more: Any) -> bytes:
    return json.dumps({"out_order_no": out_order_no, "sku": sku, "quantity": quantity, **more}).encode()


def order_request(agent: GivenAgent, sku: str, out_order_no: str = "A-1", quantity: int = 1, **more: Any) -> Signed:
    return sign(agent.key_id, agent.secret, "POST", ORDERS, body=order_body(out_order_no, sku, quantity, **more))


@pytest.fixture
async def wire(rt: Runtime) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """`wire(ip)`: an HTTP client to the app whose requests come from `ip`."""
    app = create_app(rt=rt)
    opened: list[httpx.AsyncClient] = []

    def client(ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40_000))
        http = httpx.AsyncClient(transport=transport, base_url="http://shop.test")
        opened.append(http)
        return http

    yield client
    for http in opened:
        await http.aclose()


async def send(http: httpx.AsyncClient, request: Signed) -> httpx.Response:
    url = f"{request.path}?{request.query}" if request.query else request.path
    return await http.request(request.method, url, content=request.body or None, headers=request.headers)


def refused(response: httpx.Response, status: int, code: str) -> bool:
    body = response.json()
    return response.status_code == status and set(body) == {"error"} and body["error"]["code"] == code


@dataclass(frozen=True)
class Shop:
    agent: GivenAgent
    sku: GivenSku


@pytest.fixture
async def shop(rt: Runtime) -> Shop:
    """An agent with CNY 100.00 on deposit and a SKU of 5 codes on its price list at CNY 10.00."""
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, PRICE)
    return Shop(await given_agent(rt, deposit_minor=DEPOSIT), sku)


# --- tampering, one part at a time --------------------------------------------------------------


def _resigned(request: Signed, agent: GivenAgent, *, timestamp: str) -> Signed:
    """The same request correctly signed, but with another timestamp (and the same nonce)."""
    return sign(
        agent.key_id,
        agent.secret,
        request.method,
        request.path,
        body=request.body,
        timestamp=timestamp,
        nonce=request.headers[request_signing.NONCE_HEADER],
    )


def _now() -> int:
    return int(clock.now().timestamp())


Tamper = Callable[[Signed, GivenAgent], Signed]
TAMPERING: dict[str, tuple[Tamper, int, str]] = {
    "no-signature": (lambda r, a: r.without(request_signing.SIGNATURE_HEADER), 401, "missing_signature_header"),
    "no-key": (lambda r, a: r.without(request_signing.KEY_HEADER), 401, "missing_signature_header"),
    "no-timestamp": (lambda r, a: r.without(request_signing.TIMESTAMP_HEADER), 401, "missing_signature_header"),
    "no-nonce": (lambda r, a: r.without(request_signing.NONCE_HEADER), 401, "missing_signature_header"),
    "signed-with-another-secret": (
        lambda r, a: r.with_header(
            request_signing.SIGNATURE_HEADER,
            sign(a.key_id, request_signing.new_secret(), r.method, r.path, body=r.body).headers[
                request_signing.SIGNATURE_HEADER
            ],
        ),
        401,
        "invalid_signature",
    ),
    "signature-in-upper-case": (
        lambda r, a: r.with_header(
            request_signing.SIGNATURE_HEADER, r.headers[request_signing.SIGNATURE_HEADER].upper()
        ),
        401,
        "invalid_signature",
    ),
    "body-changed-after-signing": (
        lambda r, a: replace(r, body=r.body.replace(b'"quantity": 1', b'"quantity": 3')),
        401,
        "invalid_signature",
    ),
    "body-reserialised-after-signing": (
        lambda r, a: replace(r, body=json.dumps(json.loads(r.body), separators=(",", ":")).encode()),
        401,
        "invalid_signature",
    ),
    "timestamp-ahead": (lambda r, a: _resigned(r, a, timestamp=str(_now() + 310)), 401, "timestamp_out_of_window"),
    "timestamp-behind": (lambda r, a: _resigned(r, a, timestamp=str(_now() - 310)), 401, "timestamp_out_of_window"),
    "timestamp-not-a-number": (lambda r, a: _resigned(r, a, timestamp="soon"), 401, "invalid_timestamp"),
    "timestamp-iso": (lambda r, a: _resigned(r, a, timestamp="2026-11-25T08:00:00Z"), 401, "invalid_timestamp"),
    "timestamp-fractional": (lambda r, a: _resigned(r, a, timestamp=f"{_now()}.5"), 401, "invalid_timestamp"),
    "timestamp-in-milliseconds": (
        lambda r, a: _resigned(r, a, timestamp=str(_now() * 1000)),
        401,
        "invalid_timestamp",
    ),
    "unknown-key": (
        lambda r, a: r.with_header(request_signing.KEY_HEADER, request_signing.new_key_id()),
        401,
        "unknown_key",
    ),
    "secret-pasted-as-key": (lambda r, a: r.with_header(request_signing.KEY_HEADER, a.secret), 401, "unknown_key"),
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
async def test_a_tampered_order_is_refused_changes_nothing_and_leaves_its_nonce_unspent(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], tamper: str
) -> None:
    change, status, code = TAMPERING[tamper]
    honest = order_request(shop.agent, shop.sku.code)
    before = await world(rt, shop.agent, shop.sku)
    http = wire("127.0.0.1")

    answer = await send(http, change(honest, shop.agent))

    assert refused(answer, status, code), answer.text
    assert shop.agent.secret not in answer.text
    assert await world(rt, shop.agent, shop.sku) == before
    placed = await send(http, honest)
    assert placed.status_code == 201, placed.text
    assert (await world(rt, shop.agent, shop.sku)).balance_minor == DEPOSIT - PRICE


async def test_a_timestamp_within_the_window_either_way_is_accepted(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    for shift in (-290, 290):
        request = sign(shop.agent.key_id, shop.agent.secret, "GET", "/open/v1/balance", timestamp=str(_now() + shift))
        answer = await send(http, request)
        assert answer.status_code == 200, (shift, answer.text)


async def test_a_timestamp_out_of_window_tells_the_server_time(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    request = sign(shop.agent.key_id, shop.agent.secret, "GET", "/open/v1/balance", timestamp=str(_now() - 3600))

    answer = await send(wire("127.0.0.1"), request)

    assert refused(answer, 401, "timestamp_out_of_window")
    server_time = answer.json()["error"]["details"]["server_time"]
    assert isinstance(server_time, int)
    assert abs(server_time - _now()) <= 5


@pytest.mark.parametrize(
    "nonce",
    ["a" * 15, "b" * 65, "has space in it!!", "plus+slash/equals=", "ünïcödé-nonce-1234", ""],
    ids=["too-short", "too-long", "space", "base64-not-url-safe", "non-ascii", "empty"],
)
async def test_a_malformed_nonce_is_refused_and_changes_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], nonce: str
) -> None:
    body = order_body("A-1", shop.sku.code)
    request = sign(shop.agent.key_id, shop.agent.secret, "POST", ORDERS, body=body, nonce=nonce)
    before = await world(rt, shop.agent, shop.sku)

    answer = await wire("127.0.0.1").post(
        ORDERS,
        content=body,
        headers={name.encode(): value.encode() for name, value in request.headers.items()},
    )

    assert refused(answer, 401, "missing_signature_header" if not nonce else "invalid_nonce"), answer.text
    assert await world(rt, shop.agent, shop.sku) == before


async def test_a_request_sent_to_another_path_than_it_signed_is_refused(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    placed = await send(http, order_request(shop.agent, shop.sku.code, "x"))
    assert placed.status_code == 201
    signed_for_list = sign(shop.agent.key_id, shop.agent.secret, "GET", ORDERS)

    answer = await send(http, replace(signed_for_list, path=f"{ORDERS}/x"))

    assert refused(answer, 401, "invalid_signature")
    assert (await send(http, sign(shop.agent.key_id, shop.agent.secret, "GET", f"{ORDERS}/x"))).status_code == 200


# --- the query string ---------------------------------------------------------------------------


def _window() -> tuple[str, str]:
    now = clock.now()
    return (
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


async def test_a_query_sent_in_another_order_and_encoding_than_signed_still_verifies(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    assert (await send(http, order_request(shop.agent, shop.sku.code))).status_code == 201
    since, until = _window()
    signed_query = f"since={since}&until={until}&limit=10"
    sent_query = f"limit=10&until={until.replace(':', '%3a')}&since={since.replace(':', '%3A')}"
    request = sign(shop.agent.key_id, shop.agent.secret, "GET", ORDERS, query=signed_query)

    answer = await send(http, replace(request, query=sent_query))

    assert answer.status_code == 200, answer.text
    assert [order["out_order_no"] for order in answer.json()["orders"]] == ["A-1"]


@pytest.mark.parametrize(
    "change",
    [
        lambda q: q.replace("limit=10", "limit=11"),
        lambda q: q + "&cursor=0",
        lambda q: q.replace("limit=10&", ""),
        lambda q: q.replace("limit=10", "LIMIT=10"),
    ],
    ids=["value-changed", "parameter-added", "parameter-dropped", "name-case-changed"],
)
async def test_a_query_changed_after_signing_is_refused(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient], change: Callable[[str], str]
) -> None:
    since, until = _window()
    query = f"limit=10&since={since}&until={until}"
    request = sign(shop.agent.key_id, shop.agent.secret, "GET", ORDERS, query=query)

    answer = await send(wire("127.0.0.1"), replace(request, query=change(query)))

    assert refused(answer, 401, "invalid_signature"), answer.text


# --- nonces, in the database and in Redis -------------------------------------------------------


@pytest.fixture
async def nonce_rt(db: Database, settings: Settings, redis_or_none: Redis | None) -> AsyncIterator[Runtime]:
    """A runtime whose nonces live where runtime.py puts them: in Redis when it is configured, else in the database."""
    if redis_or_none is not None:
        settings = settings.model_copy(update={"redis_url": worker_redis_url()})
    rt = await runtime_module.start(settings, db=db)
    assert isinstance(rt.agent_auth._nonces, RedisNonces if redis_or_none is not None else DatabaseNonces)
    yield rt
    await rt.agent_orders.close()
    for client in (rt.redis, rt.risk_redis):
        if client is not None:
            await client.aclose()


@pytest.fixture
async def nonce_shop(nonce_rt: Runtime) -> Shop:
    sku = await given_sku_with_codes(nonce_rt, 5)
    await given_price(nonce_rt, sku.code, PRICE)
    return Shop(await given_agent(nonce_rt, deposit_minor=DEPOSIT), sku)


@pytest.fixture
async def nonce_http(nonce_rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rt=nonce_rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


async def test_a_replayed_order_request_is_refused_and_charges_nothing_more(
    nonce_rt: Runtime, nonce_shop: Shop, nonce_http: httpx.AsyncClient
) -> None:
    captured = order_request(nonce_shop.agent, nonce_shop.sku.code)
    assert (await send(nonce_http, captured)).status_code == 201
    after_first = await world(nonce_rt, nonce_shop.agent, nonce_shop.sku)

    replayed = await send(nonce_http, captured)

    assert refused(replayed, 401, "nonce_reused")
    assert await world(nonce_rt, nonce_shop.agent, nonce_shop.sku) == after_first
    assert after_first.balance_minor == DEPOSIT - PRICE


async def test_copies_of_one_request_sent_at_once_are_accepted_exactly_once(
    nonce_rt: Runtime, nonce_shop: Shop, nonce_http: httpx.AsyncClient
) -> None:
    captured = sign(nonce_shop.agent.key_id, nonce_shop.agent.secret, "GET", "/open/v1/balance")

    answers = await asyncio.gather(*(send(nonce_http, captured) for _ in range(8)))

    assert sorted(a.status_code for a in answers) == [200] + [401] * 7
    assert all(refused(a, 401, "nonce_reused") for a in answers if a.status_code == 401)


async def test_a_nonce_belongs_to_one_key_and_an_unsigned_request_cannot_spend_it(
    nonce_rt: Runtime, nonce_shop: Shop, nonce_http: httpx.AsyncClient
) -> None:
    other = await given_agent(nonce_rt, code="other")
    nonce = secrets.token_urlsafe(16)
    forged = sign(nonce_shop.agent.key_id, request_signing.new_secret(), "GET", "/open/v1/balance", nonce=nonce)

    assert refused(await send(nonce_http, forged), 401, "invalid_signature")
    mine = sign(nonce_shop.agent.key_id, nonce_shop.agent.secret, "GET", "/open/v1/balance", nonce=nonce)
    theirs = sign(other.key_id, other.secret, "GET", "/open/v1/balance", nonce=nonce)
    assert (await send(nonce_http, mine)).status_code == 200
    assert (await send(nonce_http, theirs)).status_code == 200
    assert refused(await send(nonce_http, replace(mine)), 401, "nonce_reused")


# --- keys: revoked, rotated, allowlisted; suspended agents --------------------------------------


async def test_a_revoked_key_is_refused_at_once_and_the_agents_other_keys_still_work(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], admin_headers: dict[str, str]
) -> None:
    http = wire("127.0.0.1")
    async with rt.db.transaction() as session:
        spare = await agents.issue_key(rt.db, session, rt.keyring, shop.agent.id, ip_allowlist=[], actor="test")
    balance = sign(shop.agent.key_id, shop.agent.secret, "GET", "/open/v1/balance")
    assert (await send(http, balance)).status_code == 200  # the key's material is now cached

    revoked = await http.delete(f"/admin/api/agents/{shop.agent.id}/keys/{shop.agent.key_id}", headers=admin_headers)
    assert revoked.status_code == 200
    before = await world(rt, shop.agent, shop.sku)
    answer = await send(http, order_request(shop.agent, shop.sku.code))

    assert refused(answer, 401, "key_revoked")
    assert await world(rt, shop.agent, shop.sku) == before
    spare_order = sign(spare.key_id, spare.secret, "POST", ORDERS, body=order_body("A-2", shop.sku.code))
    assert (await send(http, spare_order)).status_code == 201


async def test_after_a_rotation_the_old_secret_works_through_the_grace_period_and_not_after(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], admin_headers: dict[str, str]
) -> None:
    http = wire("127.0.0.1")
    agent = shop.agent
    assert (await send(http, sign(agent.key_id, agent.secret, "GET", "/open/v1/balance"))).status_code == 200
    rotated = await http.post(f"/admin/api/agents/{agent.id}/keys/{agent.key_id}/rotate", headers=admin_headers)
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != agent.secret

    old_order = await send(
        http, sign(agent.key_id, agent.secret, "POST", ORDERS, body=order_body("old", shop.sku.code))
    )
    new_order = await send(http, sign(agent.key_id, new_secret, "POST", ORDERS, body=order_body("new", shop.sku.code)))
    assert (old_order.status_code, new_order.status_code) == (201, 201)
    for answer, secret in ((old_order, agent.secret), (new_order, new_secret)):
        order = answer.json()["order"]
        key = agent_crypto.code_key(secret, agent.key_id)
        assert agent_crypto.decrypt_field(key, order["codes"][0]["secret"], order["order_no"])

    clock.travel(timedelta(hours=24).total_seconds() - 60)
    assert (await send(http, sign(agent.key_id, agent.secret, "GET", "/open/v1/balance"))).status_code == 200
    clock.travel(120)
    before = await world(rt, shop.agent, shop.sku)
    late = await send(http, sign(agent.key_id, agent.secret, "POST", ORDERS, body=order_body("late", shop.sku.code)))

    assert refused(late, 401, "invalid_signature")
    assert await world(rt, shop.agent, shop.sku) == before
    assert (await send(http, sign(agent.key_id, new_secret, "GET", "/open/v1/balance"))).status_code == 200


async def test_an_ip_allowlist_admits_listed_addresses_and_cidr_ranges_and_refuses_the_rest(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    async with rt.db.transaction() as session:
        await agents.set_allowlist(
            rt.db, session, shop.agent.id, shop.agent.key_id, ["198.51.100.7", "203.0.113.0/24"], actor="test"
        )
    rt.agent_auth.forget(shop.agent.key_id)
    before = await world(rt, shop.agent, shop.sku)

    outside = await send(wire("192.0.2.1"), order_request(shop.agent, shop.sku.code, "A-1"))
    assert refused(outside, 403, "ip_not_allowed")
    assert await world(rt, shop.agent, shop.sku) == before

    assert (await send(wire("198.51.100.7"), order_request(shop.agent, shop.sku.code, "A-2"))).status_code == 201
    assert (await send(wire("203.0.113.77"), order_request(shop.agent, shop.sku.code, "A-3"))).status_code == 201
    assert refused(await send(wire("198.51.100.8"), order_request(shop.agent, shop.sku.code)), 403, "ip_not_allowed")


async def test_a_suspended_agent_is_refused_and_a_reinstated_one_buys_again(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], admin_headers: dict[str, str]
) -> None:
    http = wire("127.0.0.1")
    agent_url = f"/admin/api/agents/{shop.agent.id}"
    assert (await send(http, sign(shop.agent.key_id, shop.agent.secret, "GET", "/open/v1/balance"))).status_code == 200

    assert (await http.patch(agent_url, json={"status": "suspended"}, headers=admin_headers)).status_code == 200
    before = await world(rt, shop.agent, shop.sku)
    suspended = await send(http, order_request(shop.agent, shop.sku.code))
    forged = await send(http, sign(shop.agent.key_id, request_signing.new_secret(), "GET", "/open/v1/balance"))

    assert refused(suspended, 403, "agent_suspended")
    assert refused(forged, 401, "invalid_signature"), "the status is told only to the key's holder"
    assert await world(rt, shop.agent, shop.sku) == before
    assert (await http.patch(agent_url, json={"status": "active"}, headers=admin_headers)).status_code == 200
    assert (await send(http, order_request(shop.agent, shop.sku.code, "A-2"))).status_code == 201


# --- abusive orders -----------------------------------------------------------------------------


async def test_an_out_order_no_reused_with_another_body_is_a_conflict_and_changes_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    assert (await send(http, order_request(shop.agent, shop.sku.code, "A-1", 1))).status_code == 201
    before = await world(rt, shop.agent, shop.sku)

    for changed in (
        order_request(shop.agent, shop.sku.code, "A-1", 2),
        order_request(shop.agent, shop.sku.code, "A-1", 1, mode="async"),
        order_request(shop.agent, shop.sku.code, "A-1", 1, allow_partial=True),
    ):
        answer = await send(http, changed)
        assert refused(answer, 409, "idempotency_conflict"), answer.text
    assert await world(rt, shop.agent, shop.sku) == before
    again = await send(http, order_request(shop.agent, shop.sku.code, "A-1", 1))
    assert again.status_code == 200
    assert await world(rt, shop.agent, shop.sku) == before


OVER_THE_SKUS_MAX = pytest.param(11, 400, "invalid_quantity", id="over-the-skus-max")


@pytest.mark.parametrize(
    ("quantity", "status", "code"),
    [
        pytest.param(-5, 400, "invalid_quantity", id="negative"),
        pytest.param(0, 400, "invalid_quantity", id="zero"),
        OVER_THE_SKUS_MAX,
        pytest.param(10_001, 400, "invalid_quantity", id="over-the-shops-max"),
        pytest.param(2**63, 422, "validation_error", id="past-64-bits"),
        pytest.param(10**30, 422, "validation_error", id="huge"),
    ],
)
async def test_a_quantity_out_of_range_is_refused_and_changes_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], quantity: int, status: int, code: str
) -> None:
    before = await world(rt, shop.agent, shop.sku)

    answer = await send(wire("127.0.0.1"), order_request(shop.agent, shop.sku.code, "A-1", quantity))

    assert refused(answer, status, code), answer.text
    assert await world(rt, shop.agent, shop.sku) == before


async def test_an_order_the_balance_cannot_cover_is_refused_whole_unless_partial_is_allowed(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    assert (await send(http, order_request(shop.agent, shop.sku.code, "A-1", 1))).status_code == 201
    async with rt.db.transaction() as session:
        await agents.top_up(rt.db, session, shop.agent.id, -7 * PRICE, reference="take-back", actor="test")
    before = await world(rt, shop.agent, shop.sku)
    assert (before.balance_minor, before.stock.available) == (2 * PRICE, 4)

    whole = await send(http, order_request(shop.agent, shop.sku.code, "A-2", 3))
    assert refused(whole, 402, "insufficient_balance")
    assert await world(rt, shop.agent, shop.sku) == before

    partial = await send(http, order_request(shop.agent, shop.sku.code, "A-3", 3, allow_partial=True))
    order = partial.json()["order"]
    assert (order["status"], order["requested_quantity"], order["quantity"]) == ("delivered", 3, 2)
    assert (order["total_minor"], len(order["codes"])) == (2 * PRICE, 2)
    after = await world(rt, shop.agent, shop.sku)
    assert (after.balance_minor, after.stock.sold, after.orders) == (0, before.stock.sold + 2, before.orders + 1)


async def test_a_sku_off_the_price_list_unknown_or_named_by_its_id_is_not_for_sale(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    unlisted = await given_sku_with_codes(rt, 3)
    before = await world(rt, shop.agent, shop.sku)

    for n, sku in enumerate((unlisted.code, "NO-SUCH-SKU", str(shop.sku.id))):
        answer = await send(http, order_request(shop.agent, sku, f"A-{n}"))
        assert refused(answer, 404, "sku_not_available_for_agent"), (sku, answer.text)
    assert await world(rt, shop.agent, shop.sku) == before
    assert (await stock_of(rt, unlisted)).sold == 0


async def test_an_inactive_sku_or_a_switched_off_channel_sells_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    before = await world(rt, shop.agent, shop.sku)
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, "api", actor="test", active=False)

    switched_off = await send(http, order_request(shop.agent, shop.sku.code, "A-1"))

    assert refused(switched_off, 403, "channel_inactive")
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, "api", actor="test", active=True)
        sku = await session.get(Sku, shop.sku.id)
        assert sku is not None
        sku.active = False
    inactive_sku = await send(http, order_request(shop.agent, shop.sku.code, "A-2"))
    assert refused(inactive_sku, 404, "sku_not_available_for_agent")
    assert await world(rt, shop.agent, shop.sku) == before


async def test_a_wrong_signature_is_never_answered_with_the_expected_one(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    honest = order_request(shop.agent, shop.sku.code)
    expected = honest.headers[request_signing.SIGNATURE_HEADER]

    answer = await send(wire("127.0.0.1"), honest.with_header(request_signing.SIGNATURE_HEADER, "0" * 64))

    assert refused(answer, 401, "invalid_signature")
    assert expected not in answer.text
    assert shop.agent.secret not in answer.text


async def test_a_body_is_read_only_after_its_signature_checks_out(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    before = await world(rt, shop.agent, shop.sku)
    broken = sign(shop.agent.key_id, shop.agent.secret, "POST", ORDERS, body=b'{"out_order_no": "A-1",')
    unsigned = broken.with_header(request_signing.SIGNATURE_HEADER, "0" * 64)
    incomplete = sign(shop.agent.key_id, shop.agent.secret, "POST", ORDERS, body=b'{"out_order_no": "A-1"}')

    assert refused(await send(http, unsigned), 401, "invalid_signature"), "nothing about the body before the signature"
    assert refused(await send(http, broken), 400, "bad_input")
    assert refused(await send(http, incomplete), 422, "validation_error")
    assert await world(rt, shop.agent, shop.sku) == before


# --- strict bodies: money moves only on well-typed JSON -------------------------------------------


LOOSE_ORDERS: dict[str, dict[str, Any]] = {
    "quantity-as-string": {"quantity": "2"},
    "quantity-as-true": {"quantity": True},
    "quantity-as-float": {"quantity": 2.0},
    "allow-partial-as-yes": {"allow_partial": "yes"},
    "allow-partial-as-string-false": {"allow_partial": "false"},
    "allow-partial-as-zero": {"allow_partial": 0},
    "out-order-no-as-number": {"out_order_no": 17},
    "out-order-no-with-a-space": {"out_order_no": "A 1"},
    "out-order-no-too-long": {"out_order_no": "A" * 65},
    "unknown-field": {"coupon": "FREE"},
}


def _loose(sku: str, change: dict[str, Any]) -> dict[str, Any]:
    return {"out_order_no": "A-1", "sku": sku, "quantity": 1, **change}


@pytest.mark.parametrize("loose", list(LOOSE_ORDERS), ids=list(LOOSE_ORDERS))
async def test_an_order_with_a_loosely_typed_field_is_a_validation_error_and_changes_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], loose: str
) -> None:
    http = wire("127.0.0.1")
    order = _loose(shop.sku.code, LOOSE_ORDERS[loose])
    alone = sign(shop.agent.key_id, shop.agent.secret, "POST", ORDERS, body=json.dumps(order).encode())
    batch = json.dumps({"orders": [_loose(shop.sku.code, {"out_order_no": "B-1"}), order]}).encode()
    batched = sign(shop.agent.key_id, shop.agent.secret, "POST", f"{ORDERS}/batch", body=batch)
    before = await world(rt, shop.agent, shop.sku)

    for request in (alone, batched):
        answer = await send(http, request)
        assert refused(answer, 422, "validation_error"), answer.text
        assert answer.json()["error"]["details"]["problems"]
    assert await world(rt, shop.agent, shop.sku) == before


# --- the media type of a body -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
    ids=["none", "text", "form", "multipart", "xml"],
)
@pytest.mark.parametrize("path", [ORDERS, f"{ORDERS}/batch"], ids=["order", "batch"])
async def test_a_body_not_sent_as_json_is_refused_with_415_and_changes_nothing(
    rt: Runtime, shop: Shop, wire: Callable[[str], httpx.AsyncClient], content_type: str | None, path: str
) -> None:
    body = order_body("A-1", shop.sku.code) if path == ORDERS else json.dumps({"orders": [_loose(shop.sku.code, {})]})
    request = sign(
        shop.agent.key_id, shop.agent.secret, "POST", path, body=body if isinstance(body, bytes) else body.encode()
    )
    headers = {k: v for k, v in request.headers.items() if k != "Content-Type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = await world(rt, shop.agent, shop.sku)

    answer = await send(wire("127.0.0.1"), replace(request, headers=headers))

    assert refused(answer, 415, "unsupported_media_type"), answer.text
    assert await world(rt, shop.agent, shop.sku) == before


async def test_json_with_a_charset_or_a_json_suffix_is_json(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    for n, content_type in enumerate(("application/json; charset=utf-8", "application/vnd.kaquan+json")):
        request = order_request(shop.agent, shop.sku.code, f"A-{n}")
        answer = await send(http, request.with_header("Content-Type", content_type))
        assert answer.status_code == 201, answer.text


# --- a raw plus sign in the query ---------------------------------------------------------------


@pytest.mark.parametrize("query", ["since={since}&until={until}&cursor=1+2", "since={since}+&until={until}"])
async def test_a_raw_plus_in_the_query_is_refused_as_ambiguous_and_spends_no_nonce(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient], query: str
) -> None:
    """Starlette would read `+` as a space while the signature covers a plus sign: refused, whoever signed it."""
    http = wire("127.0.0.1")
    since, until = _window()
    raw = query.format(since=since, until=until)
    ambiguous = sign(shop.agent.key_id, shop.agent.secret, "GET", ORDERS, query=raw)

    answer = await send(http, ambiguous)

    assert refused(answer, 400, "ambiguous_query"), answer.text
    assert "%2B" in answer.json()["error"]["message"]
    encoded = raw.replace("+", "%20")
    fixed = sign(
        shop.agent.key_id,
        shop.agent.secret,
        "GET",
        ORDERS,
        query=encoded,
        nonce=ambiguous.headers[request_signing.NONCE_HEADER],
    )
    assert (await send(http, fixed)).status_code != 401, "signed and read alike; the refusal spent no nonce"


async def test_a_plus_sign_sent_as_percent_2b_is_the_value_signed_and_read(
    shop: Shop, wire: Callable[[str], httpx.AsyncClient]
) -> None:
    http = wire("127.0.0.1")
    assert (await send(http, order_request(shop.agent, shop.sku.code))).status_code == 201
    since, until = _window()
    offset_since = since.replace("Z", "%2B00%3A00")
    request = sign(shop.agent.key_id, shop.agent.secret, "GET", ORDERS, query=f"since={offset_since}&until={until}")

    answer = await send(http, request)

    assert answer.status_code == 200, answer.text
    assert [order["out_order_no"] for order in answer.json()["orders"]] == ["A-1"]
