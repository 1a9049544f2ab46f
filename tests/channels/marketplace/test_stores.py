"""Marketplace stores: a push secret per store, orders the marketplace was paid for, delivered once per order id."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes, random_codes, stock_of
from tests.support.marketplace import (
    STORE,
    account_balance,
    given_store,
    given_store_price,
    given_store_selling,
    import_file,
    order_file,
)

from kaquan import ledger
from kaquan.audit.models import AuditEntry
from kaquan.channels import pricing as channels
from kaquan.channels.agents import request_signing
from kaquan.channels.agents.authentication import DatabaseNonces, NonceStore, RedisNonces
from kaquan.channels.errors import InvalidSignature, NonceReused, TimestampOutOfWindow
from kaquan.channels.marketplace import order_files as marketplace_files
from kaquan.channels.marketplace import stores as marketplace
from kaquan.channels.marketplace.order_files import OrderFileRejected
from kaquan.channels.marketplace.stores import Delivered, MarketplaceOrderRequest
from kaquan.inventory.models import Reveal
from kaquan.kit import clock
from kaquan.kit.errors import BadInput, DomainError
from kaquan.orders.models import Order
from kaquan.runtime import Runtime


async def ledger_ok(rt: Runtime) -> bool:
    async with rt.db.read() as session:
        return (await ledger.check(session)).ok


async def count(rt: Runtime, model: type[Order] | type[Reveal] | type[AuditEntry]) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def secrets_of(answers: list[Delivered]) -> dict[str, list[str]]:
    return {answer.line.request.marketplace_order_id: [code.secret for code in answer.codes] for answer in answers}


# --- stores -------------------------------------------------------------------------------------


async def test_a_store_is_a_marketplace_channel_with_its_fee_and_a_push_secret_shown_once(rt: Runtime) -> None:
    secret = await given_store(rt, fee_rate_bp=650)

    async with rt.db.transaction() as session:
        channel = await marketplace.get_store(session, STORE)
        shown_again = await marketplace.reveal_secret(rt.db, session, rt.keyring, STORE, actor="ops")
        with pytest.raises(marketplace.StoreExists):
            await marketplace.add_store(rt.db, session, rt.keyring, STORE, name="again", fee_rate_bp=0, actor="ops")

    assert (channel.code, channel.kind, channel.name, channel.fee_rate_bp) == (
        "marketplace:tmall",
        "marketplace",
        "Store tmall",
        650,
    )
    assert len(secret) == 43 and set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert shown_again == secret


async def test_rotation_replaces_the_secret_and_every_step_is_audited_without_it(rt: Runtime) -> None:
    first = await given_store(rt)

    async with rt.db.transaction() as session:
        second = await marketplace.rotate_secret(rt.db, session, rt.keyring, STORE, actor="ops")
    async with rt.db.transaction() as session:
        current = await marketplace.reveal_secret(rt.db, session, rt.keyring, STORE, actor="ops")
        entries = list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())

    assert second != first
    assert current == second
    actions = [entry.action for entry in entries]
    assert {"marketplace.store_added", "marketplace.secret_rotated", "marketplace.secret_revealed"} <= set(actions)
    written = " ".join(f"{e.target} {e.before} {e.after}" for e in entries)
    assert first not in written and second not in written


@pytest.mark.parametrize("store", ["", "Tmall", "-tmall", "a" * 21, "tm all", "店铺"])
async def test_a_store_code_must_fit_an_order_channel_and_a_url(rt: Runtime, store: str) -> None:
    async with rt.db.transaction() as session:
        with pytest.raises(BadInput):
            await marketplace.add_store(rt.db, session, rt.keyring, store, name="x", fee_rate_bp=0, actor="test")


async def test_a_fee_above_100_percent_is_refused(rt: Runtime) -> None:
    with pytest.raises(BadInput):
        await given_store(rt, fee_rate_bp=10_001)


async def test_an_unknown_store_has_no_secret_to_show_or_rotate(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        with pytest.raises(marketplace.StoreNotFound):
            await marketplace.reveal_secret(rt.db, session, rt.keyring, "nobody", actor="ops")
        with pytest.raises(marketplace.StoreNotFound):
            await marketplace.rotate_secret(rt.db, session, rt.keyring, "nobody", actor="ops")


# --- the push verifier --------------------------------------------------------------------------


@pytest.fixture
async def nonces(rt: Runtime, redis_or_none: Redis | None) -> AsyncIterator[NonceStore]:
    yield RedisNonces(redis_or_none) if redis_or_none is not None else DatabaseNonces(rt.db)


def signed(secret: str, store: str, body: bytes, *, nonce: str | None = None, at: int | None = None) -> dict[str, str]:
    timestamp, nonce = str(at if at is not None else int(time.time())), nonce or secrets.token_urlsafe(16)
    path = f"/marketplace/v1/{store}/orders"
    canonical = request_signing.canonical_string("POST", path, "", body, timestamp, nonce)
    return {
        "x-kq-key": store,
        "x-kq-timestamp": timestamp,
        "x-kq-nonce": nonce,
        "x-kq-signature": request_signing.sign(secret, canonical),
    }


async def test_the_verifier_takes_a_signed_request_once(rt: Runtime, nonces: NonceStore) -> None:
    secret = await given_store(rt)
    verifier = marketplace.StoreVerifier(rt.db, rt.keyring, nonces, window_s=300)
    body = b'{"marketplace_order_id":"1"}'
    headers = signed(secret, STORE, body)
    path = f"/marketplace/v1/{STORE}/orders"

    caller = await verifier.authenticate(STORE, method="POST", path=path, raw_query="", body=body, headers=headers)
    with pytest.raises(NonceReused):
        await verifier.authenticate(STORE, method="POST", path=path, raw_query="", body=body, headers=headers)
    with pytest.raises(InvalidSignature):
        await verifier.authenticate(
            STORE, method="POST", path=path, raw_query="", body=b"{}", headers=signed(secret, STORE, body)
        )
    with pytest.raises(TimestampOutOfWindow):
        stale = signed(secret, STORE, body, at=int(clock.now().timestamp()) - 301)
        await verifier.authenticate(STORE, method="POST", path=path, raw_query="", body=body, headers=stale)

    assert (caller.store, caller.secret) == (STORE, secret)


async def test_a_nonce_spent_by_one_store_is_still_fresh_for_another(rt: Runtime, nonces: NonceStore) -> None:
    tmall, jd = await given_store(rt, "tmall"), await given_store(rt, "jd")
    verifier = marketplace.StoreVerifier(rt.db, rt.keyring, nonces, window_s=300)
    nonce = secrets.token_urlsafe(16)

    for store, secret in (("tmall", tmall), ("jd", jd)):
        headers = signed(secret, store, b"", nonce=nonce)
        path = f"/marketplace/v1/{store}/orders"
        assert (
            await verifier.authenticate(store, method="POST", path=path, raw_query="", body=b"", headers=headers)
        ).store == store


# --- placing orders -----------------------------------------------------------------------------


async def test_an_imported_file_is_delivered_and_booked_as_a_receivable_net_of_the_fee(rt: Runtime) -> None:
    codes = random_codes(6)
    sku = await given_store_selling(rt, codes, price_minor=1000, fee_rate_bp=500)

    answers = await import_file(rt, order_file(f"M-1,{sku.code},2", f"M-2,{sku.code},1", f"M-3,{sku.code},3"))

    assert [(a.line.line_no, a.outcome, a.status) for a in answers] == [
        (2, "placed", "delivered"),
        (3, "placed", "delivered"),
        (4, "placed", "delivered"),
    ]
    delivered = [code for answer in answers for code in answer.codes]
    assert sorted(code.secret for code in delivered) == sorted(codes)
    stock = await stock_of(rt, sku)
    assert (stock.sold, stock.available, stock.adds_up) == (6, 0, True)
    receivable = await account_balance(rt, "receivable:marketplace:tmall:CNY")
    fees = await account_balance(rt, "fees:marketplace:tmall:CNY")
    sales = await account_balance(rt, "sales:marketplace:tmall:CNY")
    assert (receivable, fees, sales) == (5700, 300, 6000)
    assert receivable + fees == sales
    assert await ledger_ok(rt)
    async with rt.db.read() as session:
        reveals = list((await session.execute(select(Reveal))).scalars())
        placed = list((await session.execute(select(Order).order_by(Order.id))).scalars())
    assert {(r.viewer, r.reason) for r in reveals} == {("marketplace:tmall", marketplace_files.FILE_REASON)}
    assert sum(r.units for r in reveals) == 6
    assert {(o.channel, o.source, o.status) for o in placed} == {("marketplace:tmall", "tmall", "delivered")}


async def test_importing_the_same_file_again_delivers_the_same_codes_and_books_nothing_more(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(5))
    data = order_file(f"M-1,{sku.code},2", f"M-2,{sku.code},1")

    first = await import_file(rt, data)
    again = await import_file(rt, data, batch_size=1)

    assert [a.outcome for a in again] == ["replayed", "replayed"]
    assert secrets_of(again) == secrets_of(first)
    assert [a.order_no for a in again] == [a.order_no for a in first]
    assert (await stock_of(rt, sku)).sold == 3
    assert await account_balance(rt, "sales:marketplace:tmall:CNY") == 3000
    assert await count(rt, Order) == 2
    assert await count(rt, Reveal) == 4  # every reveal is recorded, the second delivery too


async def test_a_bad_file_names_every_bad_line_and_places_nothing(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(5))
    unlisted = await given_sku_with_codes(rt, 2)
    data = order_file(
        f"M-1,{sku.code},1",
        f"M 2,{sku.code},1",
        f"M-3,{sku.code},zero",
        f"M-4,{sku.code},0",
        f"M-5,{unlisted.code},1",
        "M-6,NO-SUCH-SKU,1",
        "",
        f"M-1,{sku.code},1",
        f"M-7,{sku.code}",
        f"M-8,{sku.code},1",
    )

    async with rt.db.read() as session:
        with pytest.raises(OrderFileRejected) as rejected:
            await marketplace_files.check_order_file(session, STORE, data, max_per_order=100)

    problems = [(p["line_no"], p["code"]) for p in rejected.value.details["problems"]]
    assert problems == [
        (3, "bad_input"),
        (4, "bad_input"),
        (5, "invalid_quantity"),
        (6, "sku_not_listed"),
        (7, "sku_not_listed"),
        (9, "duplicate_in_file"),
        (10, "misshapen_line"),
    ]
    assert "line 2" in rejected.value.details["problems"][5]["reason"]
    assert await count(rt, Order) == 0
    assert (await stock_of(rt, sku)).available == 5


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "the file is empty"),
        (b"marketplace_order_id,sku,quantity\n\n", "no orders"),
        (b"order,sku,quantity\nM-1,X,1", "line 1: the header must be"),
        (b"marketplace_order_id,sku,quantity\nM-1,\xff\xfe,1", "line 2: this line is not UTF-8"),
    ],
)
def test_a_file_that_is_not_an_order_file_says_why(data: bytes, said: str) -> None:
    with pytest.raises(OrderFileRejected) as rejected:
        marketplace_files.parse_order_file(data, max_per_order=100)

    problems = rejected.value.details["problems"]
    text = rejected.value.message + " ".join(f"line {p['line_no']}: {p['reason']}" for p in problems)
    assert said in text


def test_a_file_may_carry_a_bom_columns_in_any_order_and_the_buyer() -> None:
    data = "\ufeffSKU,Quantity,marketplace_order_id,buyer\n\nVIDEO-1M,2,M-1,张三\n".encode()

    lines, problems = marketplace_files.parse_order_file(data, max_per_order=100)

    assert problems == []
    assert [(line.line_no, line.request) for line in lines] == [
        (3, MarketplaceOrderRequest("M-1", "VIDEO-1M", 2, "张三"))
    ]


async def test_out_of_stock_lines_are_reported_whole_and_the_rest_delivered(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(5), price_minor=100)

    answers = await import_file(rt, order_file(f"M-1,{sku.code},3", f"M-2,{sku.code},3", f"M-3,{sku.code},2"))

    assert [(a.outcome, len(a.codes)) for a in answers] == [("placed", 3), ("out_of_stock", 0), ("placed", 2)]
    assert await count(rt, Order) == 2
    assert await account_balance(rt, "sales:marketplace:tmall:CNY") == 500
    assert await ledger_ok(rt)


async def test_a_line_conflicting_with_an_earlier_order_is_reported_and_the_others_delivered(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(5))
    first = await import_file(rt, order_file(f"M-1,{sku.code},1"))

    answers = await import_file(rt, order_file(f"M-1,{sku.code},2", f"M-2,{sku.code},1"))

    assert [a.outcome for a in answers] == ["conflict", "placed"]
    assert answers[0].order_no == first[0].order_no and answers[0].codes == ()
    assert (await stock_of(rt, sku)).sold == 2


async def test_a_known_order_is_delivered_again_after_its_sku_left_the_price_list(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(3))
    data = order_file(f"M-1,{sku.code},1")
    first = await import_file(rt, data)
    async with rt.db.transaction() as session:
        await channels.remove_price(rt.db, session, marketplace.channel_of(STORE), sku.code, actor="test")

    again = await import_file(rt, data)
    with pytest.raises(OrderFileRejected):
        await import_file(rt, order_file(f"M-2,{sku.code},1"))

    assert secrets_of(again) == secrets_of(first)


async def test_the_stores_quota_keeps_the_rest_of_the_stock_for_other_channels(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(10))
    async with rt.db.transaction() as session:
        await channels.set_quota(rt.db, session, marketplace.channel_of(STORE), sku.code, 3_000, actor="test")

    answers = await import_file(rt, order_file(f"M-1,{sku.code},2", f"M-2,{sku.code},2", f"M-3,{sku.code},1"))

    assert [a.outcome for a in answers] == ["placed", "out_of_stock", "placed"]
    assert (await stock_of(rt, sku)).sold == 3


async def test_a_switched_off_store_takes_no_orders(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(3))
    async with rt.db.transaction() as session:
        await channels.configure(rt.db, session, marketplace.channel_of(STORE), active=False, actor="test")

    with pytest.raises(marketplace.StoreInactive):
        await import_file(rt, order_file(f"M-1,{sku.code},1"))


async def test_stores_keep_their_orders_apart(rt: Runtime) -> None:
    sku = await given_store_selling(rt, random_codes(4))
    await given_store(rt, "jd")
    await given_store_price(rt, sku, 900, store="jd")

    tmall = await import_file(rt, order_file(f"M-1,{sku.code},1"))
    jd = await import_file(rt, order_file(f"M-1,{sku.code},1"), store="jd")

    assert tmall[0].outcome == jd[0].outcome == "placed"
    assert tmall[0].order_no != jd[0].order_no
    assert await account_balance(rt, "sales:marketplace:jd:CNY") == 900


async def test_concurrent_pushes_of_one_order_place_it_once_and_answer_all_with_its_codes(rt: Runtime) -> None:
    secret = await given_store(rt)
    sku = await given_sku_with_codes(rt, 10)
    await given_store_price(rt, sku, 100)
    caller = marketplace.StoreCaller(STORE, secret)
    request = MarketplaceOrderRequest("M-1", sku.code, 2)

    async def push() -> marketplace.PushedOrder:
        return await rt.db.run(
            lambda session: marketplace.push_order(rt.db, session, rt.vault, caller, request, max_per_order=100)
        )

    results = await asyncio.gather(*(push() for _ in range(8)), return_exceptions=True)

    pushed = [r for r in results if isinstance(r, marketplace.PushedOrder)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(pushed) + len(refused) == 8 and pushed, results
    assert {r.code for r in refused} <= {"busy"}
    assert sum(p.created for p in pushed) == 1
    assert len({p.order.number for p in pushed}) == 1
    assert len({tuple(code.secret for code in p.codes) for p in pushed}) == 1
    assert (await stock_of(rt, sku)).sold == 2
    assert await account_balance(rt, "sales:marketplace:tmall:CNY") == 200


def test_the_request_fingerprint_covers_sku_quantity_and_buyer() -> None:
    base = MarketplaceOrderRequest("M-1", "VIDEO-1M", 1)
    digests = {
        r.fingerprint()
        for r in (base, MarketplaceOrderRequest("M-1", "VIDEO-3M", 1), MarketplaceOrderRequest("M-1", "VIDEO-1M", 2))
    } | {MarketplaceOrderRequest("M-1", "VIDEO-1M", 1, "buyer").fingerprint()}
    assert len(digests) == 4
    assert MarketplaceOrderRequest("M-2", "VIDEO-1M", 1).fingerprint() == base.fingerprint()
