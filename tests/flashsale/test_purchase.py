"""The path of one purchase: gate, queue, group commit, and an answer the buyer can act on.

Every test runs on SQLite and PostgreSQL, with the in-process gate and (when
KAQUAN_TEST_REDIS_URL is set) the Redis gate.
"""

import asyncio
import secrets
import threading
from collections import Counter

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes, order_view, pay, stock_of
from tests.support.flash import (
    a_device,
    attempt,
    emptied,
    given_event,
    held_by_event,
    hold_commits,
    new_flash,
    settled,
    until_queued,
)

from kaquan.flashsale import committer as flash_committer
from kaquan.flashsale import service
from kaquan.flashsale.errors import TicketNotFound
from kaquan.flashsale.gate import Gate, GateView, MemoryGate, RedisGate
from kaquan.flashsale.keys import device_tag, ip_tag
from kaquan.flashsale.models import Purchase
from kaquan.flashsale.purchase import FlashSale
from kaquan.inventory.models import Code
from kaquan.kit import clock
from kaquan.orders import service as orders_service
from kaquan.orders.models import Order
from kaquan.payments import service as payments
from kaquan.runtime import Runtime


async def won_orders(rt: Runtime) -> list[Order]:
    async with rt.db.read() as session:
        return list((await session.execute(select(Order).where(Order.source.like("flash:%")))).scalars())


async def codes_held_by_orders(rt: Runtime) -> Counter[int]:
    """How many codes each order holds (reserved or sold), by order id."""
    async with rt.db.read() as session:
        rows = await session.execute(
            select(Code.order_id, func.count()).where(Code.order_id > 0).group_by(Code.order_id)
        )
        return Counter({order_id: count for order_id, count in rows if order_id is not None})


async def test_a_winner_gets_an_order_holding_its_codes_and_pays_through_the_normal_path(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=2, price_minor=990)

    tried = await attempt(flash, event_id, "Ann@Example.com ", quantity=2)

    answer = tried.answer
    assert answer is not None
    assert answer.result == "won"
    assert (answer.quantity, answer.total_minor, answer.currency) == (2, 1980, "CNY")
    assert answer.order_no and answer.lookup_secret and answer.pay_url and answer.pay_before
    async with rt.db.read() as session:
        order = (await session.execute(select(Order).where(Order.number == answer.order_no))).scalar_one()
        payment = await payments.latest_for_order(session, order.id)
    assert (order.status, order.contact, order.unit_price_minor) == ("pending_payment", "ann@example.com", 990)
    assert await held_by_event(rt, event_id) == 3
    assert payment is not None and answer.pay_url.endswith(payment.token)

    assert await pay(rt, payment.token) == "delivered"
    delivered = await order_view(rt, answer.order_no, answer.lookup_secret)
    assert delivered.status == "delivered"
    assert len(set(delivered.codes)) == 2
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (5, 3, 2)
    assert stock.adds_up


async def test_sold_out_is_answered_by_the_gate_once_the_allotment_is_promised(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=2)

    results = [(await attempt(flash, event_id, f"buyer-{n}")).result for n in range(4)]

    assert results == ["won", "won", "sold_out", "sold_out"]
    assert (await stock_of(rt, sku)).available == 8  # the rest of central stock is untouched


async def test_a_retried_request_never_buys_twice(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=3)

    first = await attempt(flash, event_id, "ann", request_id="req-1")
    again = await asyncio.gather(*(attempt(flash, event_id, "ann", request_id="req-1") for _ in range(5)))

    assert first.answer is not None and first.answer.result == "won"
    assert {(t.answer.result, t.answer.order_no) for t in again if t.answer} == {("won", first.answer.order_no)}
    assert len(await won_orders(rt)) == 1
    view = await flash.gate.view(event_id)
    assert view is not None and view.tokens == 4


async def test_the_same_request_id_with_another_quantity_is_a_conflict(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=3)
    await attempt(flash, event_id, "ann", request_id="req-1")

    tried = await attempt(flash, event_id, "ann", quantity=2, request_id="req-1")

    assert tried.error == "idempotency_conflict"
    assert len(await won_orders(rt)) == 1


async def test_the_same_request_id_from_two_buyers_is_two_purchases(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5)

    ann, bob = (
        await attempt(flash, event_id, "ann", request_id="1"),
        await attempt(flash, event_id, "bob", request_id="1"),
    )

    assert ann.result == bob.result == "won"
    assert len(await won_orders(rt)) == 2


async def test_a_bot_with_one_buyer_id_is_held_to_the_limit(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 50)
    event_id = await given_event(rt, sku, stock=50, limit=2)

    hammered = await asyncio.gather(*(attempt(flash, event_id, "bot-7") for _ in range(100)))
    spelled = await asyncio.gather(*(attempt(flash, event_id, " BOT-7 ") for _ in range(20)))

    results = Counter(t.result for t in [*hammered, *spelled])
    assert results == Counter({"won": 2, "limit_reached": 118})
    async with rt.db.read() as session:
        assert await service.units_by_buyer(session, event_id) == {"bot-7": 2}


async def test_a_storm_sells_exactly_the_allotment_each_code_once_within_every_limit(
    rt: Runtime, flash: FlashSale
) -> None:
    """~300 concurrent purchases from 100 buyers over 50 codes: correctness, not speed."""
    sku = await given_sku_with_codes(rt, 80)
    event_id = await given_event(rt, sku, stock=50, limit=1)

    tried = await asyncio.gather(*(attempt(flash, event_id, f"buyer-{n % 100}") for n in range(300)))

    results = Counter(t.result for t in tried)
    assert results["won"] == 50
    assert set(results) <= {"won", "sold_out", "limit_reached"}
    winners = [t.buyer for t in tried if t.result == "won"]
    assert len(set(winners)) == 50  # one unit per buyer
    held = await codes_held_by_orders(rt)
    orders = await won_orders(rt)
    assert len(orders) == 50
    assert all(held[order.id] == 1 for order in orders)
    assert sum(held.values()) == 50  # no code went to two orders
    assert await held_by_event(rt, event_id) == 0
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (30, 50, 0)
    assert stock.adds_up
    view = await flash.gate.view(event_id)
    assert view is not None and view.tokens == 0


async def test_the_database_never_sells_beyond_the_allotment_even_if_the_gate_knows_too_much(
    rt: Runtime, flash: FlashSale, gate: Gate
) -> None:
    sku = await given_sku_with_codes(rt, 40)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    await flash.reconcile(event_id)
    await gate.load(event_id, tokens=1000, buyers={}, open=True, ttl_s=600)  # a gate gone badly wrong

    tried = await asyncio.gather(*(attempt(flash, event_id, f"buyer-{n}") for n in range(60)))

    assert Counter(t.result for t in tried) == Counter({"won": 10, "sold_out": 50})
    assert sum((await codes_held_by_orders(rt)).values()) == 10
    assert (await stock_of(rt, sku)).available == 30
    view = await gate.view(event_id)
    assert view is not None and view.tokens == 0  # capped at what the event holds after the batches


async def test_the_database_holds_the_limit_even_if_the_gate_forgot_the_buyer(
    rt: Runtime, flash: FlashSale, gate: Gate
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    assert (await attempt(flash, event_id, "ann")).result == "won"
    await gate.load(event_id, tokens=9, buyers={}, open=True, ttl_s=600)

    assert (await attempt(flash, event_id, "ann")).result == "limit_reached"
    assert len(await won_orders(rt)) == 1
    view = await gate.view(event_id)
    assert view == GateView(tokens=9, open=True, buyers=0)


@pytest.mark.parametrize(
    "waiting",
    [{"flash_wait_s": 0.01}, {"flash_wait_queue_max": 0}],
    ids=["after-a-short-wait", "in-a-storm-never-a-ticket"],
)
async def test_a_full_queue_sheds_load_at_once_and_gives_the_admission_back(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch, waiting: dict[str, float]
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    flash = new_flash(rt, gate, flash_queue_max=1, **waiting)
    release = hold_commits(monkeypatch)
    try:
        first = await attempt(flash, event_id, "ann")  # its batch is committing (stuck)
        second = await attempt(flash, event_id, "bob")  # waits in the queue
        third = await attempt(flash, event_id, "cat")  # the queue is full

        assert (first.result, second.result, third.result) == ("queued", "queued", "error:busy")
        view = await gate.view(event_id)
        assert view is not None and (view.tokens, view.buyers) == (8, 2)
        release.set()
        assert (await settled(flash, first.answer)).result == "won"
        assert (await settled(flash, second.answer)).result == "won"
        retried = await attempt(flash, event_id, "cat")  # a retry after the 503 gets in
        assert (await settled(flash, retried.answer)).result == "won"
    finally:
        release.set()
        await flash.close()


async def test_in_a_storm_a_winner_is_answered_with_its_ticket_at_once_and_gets_the_order_through_it(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `flash_wait_queue_max` of the event's purchases already queued here, the next does not wait."""
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    flash = new_flash(rt, gate, flash_wait_queue_max=2, flash_wait_s=60)
    release = hold_commits(monkeypatch)
    try:
        waiting = [asyncio.create_task(attempt(flash, event_id, name)) for name in ("ann", "bob")]
        await until_queued(flash, event_id, 2)

        third = await attempt(flash, event_id, "cat")  # answered while the first two still wait for their batch

        assert third.result == "queued" and not any(task.done() for task in waiting)
        release.set()
        assert [(await task).result for task in waiting] == ["won", "won"]  # a quiet sale's winners waited
        won = await settled(flash, third.answer)
        assert won.result == "won" and won.order_no is not None
        assert len(await won_orders(rt)) == 3
    finally:
        release.set()
        await flash.close()


async def test_a_ticket_polled_where_its_purchase_committed_is_answered_without_the_database(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    flash = new_flash(rt, gate, flash_wait_queue_max=0)  # every winner gets its ticket at once
    elsewhere = new_flash(rt, gate)  # another process on the same gate and database
    try:
        queued = (await attempt(flash, event_id, "ann")).answer
        assert queued is not None and queued.result == "queued" and queued.ticket is not None
        await until_queued(flash, event_id, 0)
        from_the_database = await elsewhere.ticket(queued.ticket)

        async def no_database(*args: object, **kwargs: object) -> object:
            raise AssertionError("the database was read")

        monkeypatch.setattr(service, "purchases_by_key", no_database)
        here = await flash.ticket(queued.ticket)

        assert here.result == "won" and here.order_no is not None
        assert here == from_the_database
    finally:
        await flash.close()
        await elsewhere.close()


async def test_a_failed_commit_buys_nothing_and_the_retry_gets_in(
    rt: Runtime, flash: FlashSale, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3)
    real_commit = flash_committer.commit_batch

    async def broken(*args: object, **kwargs: object) -> object:
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr(flash_committer, "commit_batch", broken)
    failed = await attempt(flash, event_id, "ann", request_id="r1")
    monkeypatch.setattr(flash_committer, "commit_batch", real_commit)
    retried = await attempt(flash, event_id, "ann", request_id="r1")

    assert (failed.result, retried.result) == ("error:busy", "won")
    assert len(await won_orders(rt)) == 1
    view = await flash.gate.view(event_id)
    assert view is not None and view.tokens == 2


async def test_a_crash_between_admission_and_commit_loses_no_stock_and_sells_nothing_twice(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admissions that never reached the database come back to the gate; the buyers' retries are safe."""
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=4, limit=1)
    doomed = new_flash(rt, gate, flash_wait_s=0.01)
    real_commit = flash_committer.commit_batch
    resume = hold_commits(monkeypatch)  # the process dies here, before its transaction
    lost = [await attempt(doomed, event_id, f"buyer-{n}", request_id=f"r{n}") for n in range(4)]
    assert [t.result for t in lost] == ["queued"] * 4
    assert (await attempt(doomed, event_id, "late")).result == "sold_out"
    monkeypatch.setattr(flash_committer, "commit_batch", real_commit)

    assert await held_by_event(rt, event_id) == 4  # the database never saw them

    # A new process: its first purchase of the event reconciles the gate from the database.
    restarted = new_flash(rt, gate if isinstance(gate, RedisGate) else MemoryGate())
    clock.travel(rt.settings.flash_stale_s + 1)  # the lost admissions' pending state goes stale
    retried = [await attempt(restarted, event_id, f"buyer-{n}", request_id=f"r{n}") for n in range(4)]
    view = await restarted.gate.view(event_id)
    resume.set()  # the old process comes back to life after all: its batch must not sell again
    await doomed.close()
    await restarted.close()

    assert [t.result for t in retried] == ["won"] * 4
    assert view == GateView(tokens=0, open=True, buyers=4)
    assert len(await won_orders(rt)) == 4
    assert sum((await codes_held_by_orders(rt)).values()) == 4
    assert await held_by_event(rt, event_id) == 0
    assert (await stock_of(rt, sku)).adds_up


async def test_a_gate_emptied_mid_sale_is_rebuilt_from_the_database_and_never_oversells(
    rt: Runtime, gate: Gate, redis_or_none: Redis | None
) -> None:
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=20, limit=1)
    before = new_flash(rt, gate)
    first = await asyncio.gather(*(attempt(before, event_id, f"buyer-{n}") for n in range(12)))
    await before.close()

    rebuilt = new_flash(rt, await emptied(gate, redis_or_none, event_id))
    second = await asyncio.gather(*(attempt(rebuilt, event_id, f"buyer-{n}") for n in range(40)))
    await rebuilt.close()

    assert Counter(t.result for t in first) == Counter({"won": 12})
    results = Counter(t.result for t in second)
    assert results == Counter({"won": 8, "limit_reached": 12, "sold_out": 20})
    assert len(await won_orders(rt)) == 20
    assert sum((await codes_held_by_orders(rt)).values()) == 20
    assert (await stock_of(rt, sku)).adds_up


async def test_a_reconcile_rederives_the_gate_from_database_truth(rt: Runtime, flash: FlashSale, gate: Gate) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=6, limit=2)
    await attempt(flash, event_id, "ann", quantity=2)
    await gate.load(event_id, tokens=0, buyers={}, open=True, ttl_s=600)

    truth = await flash.reconcile(event_id)

    assert (truth.open, truth.tokens, len(truth.buyers)) == (True, 4, 1)
    assert await gate.view(event_id) == GateView(tokens=4, open=True, buyers=1)


async def test_the_end_closes_the_gate_and_returns_unsold_codes_while_winners_keep_theirs(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=6)
    await attempt(flash, event_id, "ann")

    event = await flash.end_event(event_id, actor="ops")
    after = await attempt(flash, event_id, "bob")

    assert (event.status, event.released) == ("ended", 5)
    assert after.error == "event_ended"
    assert await flash.gate.view(event_id) == GateView(tokens=0, open=False, buyers=0)
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved) == (9, 1)


async def test_an_event_ended_in_another_process_is_refused_here_too(rt: Runtime, flash: FlashSale, gate: Gate) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=6)
    assert (await attempt(flash, event_id, "ann")).result == "won"  # this process has the event cached as live

    async with rt.db.transaction() as session:
        await service.end_event(rt.db, session, event_id, actor="cli")

    assert (await attempt(flash, event_id, "bob")).error == "event_ended"
    assert len(await won_orders(rt)) == 1


async def test_a_scheduled_event_refuses_until_its_start_then_starts_on_the_first_purchase(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3, starts_in_s=60)

    early = await attempt(flash, event_id, "ann")
    clock.travel(61)
    on_time = await attempt(flash, event_id, "ann")

    assert (early.error, on_time.result) == ("event_not_started", "won")
    assert await held_by_event(rt, event_id) == 2


async def test_the_end_time_closes_the_sale_before_the_worker_notices(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3, lasts_s=60)
    clock.travel(61)

    assert (await attempt(flash, event_id, "ann")).error == "event_ended"


async def test_a_channel_restricted_event_sells_to_that_channel_only(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3, channel="app")

    from_shop = await attempt(flash, event_id, "ann")
    from_app = await flash.purchase(event_id, "ann", 1, "r1", channel="app")

    assert from_shop.error == "channel_not_allowed"
    assert from_app.result == "won"
    assert [order.channel for order in await won_orders(rt)] == ["app"]


@pytest.mark.parametrize(
    ("buyer", "quantity", "request_id", "error"),
    [
        ("ann", 0, "r", "invalid_quantity"),
        ("ann", 3, "r", "invalid_quantity"),
        ("ann", 10**12, "r", "invalid_quantity"),
        ("   ", 1, "r", "bad_input"),
        ("ann", 1, "", "bad_input"),
        ("x" * 201, 1, "r", "bad_input"),
    ],
    ids=["zero", "over-the-limit", "huge", "blank-buyer", "no-request-id", "long-buyer"],
)
async def test_bad_input_is_refused_and_changes_nothing(
    rt: Runtime, flash: FlashSale, buyer: str, quantity: int, request_id: str, error: str
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=2)
    before = await stock_of(rt, sku)

    tried = await attempt(flash, event_id, buyer, quantity=quantity, request_id=request_id)

    assert tried.error == error
    assert await stock_of(rt, sku) == before
    assert await won_orders(rt) == []


async def test_an_unknown_event_is_not_found(flash: FlashSale) -> None:
    assert (await attempt(flash, 404, "ann")).error == "event_not_found"


async def test_a_queued_purchase_is_answered_through_its_ticket_in_any_process(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=1)
    flash = new_flash(rt, gate, flash_wait_s=0)
    try:
        queued = await attempt(flash, event_id, "ann", request_id="r1")
        assert queued.answer is not None and queued.answer.result == "queued" and queued.answer.ticket
        ticket = queued.answer.ticket
        polled = await settled(flash, queued.answer)
        assert polled.result == "won"
        assert (await new_flash(rt, gate).ticket(ticket)).order_no == polled.order_no
        again = await attempt(flash, event_id, "ann", request_id="r1")
        assert again.answer is not None and again.answer.order_no == polled.order_no
        loser = await attempt(flash, event_id, "bob")
        assert loser.result == "sold_out"
    finally:
        await flash.close()


async def test_a_forged_or_unknown_ticket_is_not_found(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=1)
    won = await attempt(flash, event_id, "ann")
    assert won.result == "won"
    key = secrets.token_hex(16)

    for ticket in (f"{event_id}.{key}.{'0' * 32}", "garbage", f"{event_id}..", "", "99999999999999.a.b"):
        with pytest.raises(TicketNotFound):
            await flash.ticket(ticket)


async def test_several_processes_without_a_shared_gate_refuse_flash_sales(rt: Runtime, gate: Gate) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3)
    one_of_many = new_flash(rt, gate, serve_workers=4)

    tried = await attempt(one_of_many, event_id, "ann")

    if isinstance(gate, RedisGate):
        assert tried.result == "won"
    else:
        assert tried.error == "flash_sale_needs_redis"
        assert await won_orders(rt) == []


async def test_purchase_rows_record_each_winner_once(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=2)

    await asyncio.gather(*(attempt(flash, event_id, "ann", request_id=f"r{n % 3}") for n in range(9)))

    async with rt.db.read() as session:
        rows = list((await session.execute(select(Purchase.key, Purchase.quantity))).all())
    assert len(rows) == 2
    assert len({key for key, _ in rows}) == 2


async def test_a_retry_after_the_gate_forgot_its_requests_still_gets_the_order_it_won(
    rt: Runtime, gate: Gate, redis_or_none: Redis | None
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=1)
    before = new_flash(rt, gate)
    first = await attempt(before, event_id, "ann", request_id="req-1")
    await before.close()

    rebuilt = new_flash(rt, await emptied(gate, redis_or_none, event_id))
    retry = await attempt(rebuilt, event_id, "ann", request_id="req-1")
    other = await attempt(rebuilt, event_id, "ann", request_id="req-2")
    await rebuilt.close()

    assert first.answer is not None and first.answer.result == "won"
    assert retry.answer is not None and (retry.answer.result, retry.answer.order_no) == ("won", first.answer.order_no)
    assert other.result == "limit_reached", "a new request of the same buyer is still held to the limit"
    assert len(await won_orders(rt)) == 1


# --- limits per address and per device, verified buyers ----------------------------------------


async def test_an_address_is_held_to_its_limit_whatever_buyers_and_devices_it_makes_up(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=2)

    tried = [await attempt(flash, event_id, f"bot-{n}", ip="203.0.113.7", device=a_device()) for n in range(5)]
    elsewhere = await attempt(flash, event_id, "ann", ip="198.51.100.1", device=a_device())

    assert [t.result for t in tried] == ["won", "won", "limit_reached", "limit_reached", "limit_reached"]
    assert elsewhere.result == "won"
    assert len(await won_orders(rt)) == 3


async def test_an_ipv6_subscriber_counts_once_for_its_whole_slash_64(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=1)

    first = await attempt(flash, event_id, "a", ip="2001:db8:1:2::1", device=a_device())
    same_64 = await attempt(flash, event_id, "b", ip="2001:db8:1:2:ffff::9", device=a_device())
    other_64 = await attempt(flash, event_id, "c", ip="2001:db8:1:3::1", device=a_device())

    assert (first.result, same_64.result, other_64.result) == ("won", "limit_reached", "won")


async def test_a_device_is_held_to_its_limit_whatever_buyers_it_makes_up(rt: Runtime, flash: FlashSale) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)  # default: 2 units per device, 10 per address
    device = a_device()

    tried = [await attempt(flash, event_id, f"bot-{n}", ip=f"192.0.2.{n}", device=device) for n in range(4)]

    assert [t.result for t in tried] == ["won", "won", "limit_reached", "limit_reached"]


async def test_the_database_holds_the_address_and_device_limits_even_if_the_gate_forgot_them(
    rt: Runtime, flash: FlashSale, gate: Gate
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=1, per_device_limit=1)
    device = a_device()
    assert (await attempt(flash, event_id, "ann", ip="203.0.113.7", device=a_device())).result == "won"
    assert (await attempt(flash, event_id, "bob", ip="198.51.100.1", device=device)).result == "won"
    await gate.load(event_id, tokens=8, buyers={}, open=True, ttl_s=600)  # forgot every address and device

    same_ip = await attempt(flash, event_id, "cat", ip="203.0.113.7", device=a_device())
    same_device = await attempt(flash, event_id, "dan", ip="192.0.2.1", device=device)

    assert (same_ip.result, same_device.result) == ("limit_reached", "limit_reached")
    assert len(await won_orders(rt)) == 2


async def test_a_reconcile_rebuilds_the_address_and_device_counts_from_the_purchases(
    rt: Runtime, gate: Gate, redis_or_none: Redis | None
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=1, per_device_limit=1)
    device = a_device()
    before = new_flash(rt, gate)
    assert (await attempt(before, event_id, "ann", ip="203.0.113.7", device=a_device())).result == "won"
    assert (await attempt(before, event_id, "bob", ip="198.51.100.1", device=device)).result == "won"
    await before.close()

    rebuilt_gate = await emptied(gate, redis_or_none, event_id)
    rebuilt = new_flash(rt, rebuilt_gate)
    truth = await rebuilt.reconcile(event_id)
    # The gate itself refuses now, before any commit: admit straight against it.
    refused = [
        await rebuilt_gate.admit(
            event_id,
            f"new-{n}",
            1,
            limit=1,
            request=f"r-{n}",
            now_ms=0,
            stale_ms=1,
            ip=ip,
            ip_limit=1,
            device=dev,
            device_limit=1,
        )
        for n, (ip, dev) in enumerate([(ip_tag("203.0.113.7"), ""), ("", device_tag(device))])
    ]
    await rebuilt.close()

    assert (len(truth.ips), len(truth.devices)) == (2, 2)
    assert [a.verdict for a in refused] == ["limit_reached", "limit_reached"]


async def test_an_event_requiring_verified_buyers_counts_the_verified_contact_not_the_buyer_string(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, verified=True, per_ip_limit=100, per_device_limit=100)

    unverified = await attempt(flash, event_id, "ann", ip="203.0.113.7", device=a_device())
    tried = [
        await attempt(flash, event_id, f"made-up-{n}", verified="ann@example.com", device=a_device()) for n in range(5)
    ]

    assert unverified.error == "buyer_verification_required"
    assert [t.result for t in tried] == ["won"] + ["limit_reached"] * 4
    async with rt.db.read() as session:
        buyers = list((await session.execute(select(Purchase.buyer))).scalars())
        contacts = list((await session.execute(select(Order.contact).where(Order.source.like("flash:%")))).scalars())
    assert buyers == contacts == ["ann@example.com"]


async def test_a_verified_buyers_flash_order_records_the_contact_and_joins_the_buyers_history(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1, per_ip_limit=100, per_device_limit=100)

    verified = await attempt(flash, event_id, "anything", verified="ann@example.com", device=a_device())
    guest = await attempt(flash, event_id, "bob@example.com", device=a_device())

    assert verified.answer is not None and guest.answer is not None
    async with rt.db.read() as session:
        recorded = dict(
            (await session.execute(select(Order.number, Order.buyer_contact).where(Order.source.like("flash:%")))).all()
        )
        history = await orders_service.history(session, "ann@example.com")
    assert recorded == {verified.answer.order_no: "ann@example.com", guest.answer.order_no: None}
    assert [order.number for order in history] == [verified.answer.order_no]


async def test_the_same_request_from_another_device_is_never_answered_with_the_first_ones_order(
    rt: Runtime, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10, limit=1)
    mine, theirs = a_device(), a_device()
    won = await attempt(flash, event_id, "ann", request_id="r-1", device=mine)

    replayed = await attempt(flash, event_id, "ann", request_id="r-1", device=theirs)
    retried = await attempt(flash, event_id, "ann", request_id="r-1", device=mine)

    assert won.answer is not None and won.answer.result == "won"
    assert replayed.answer is not None
    assert (replayed.answer.result, replayed.answer.order_no, replayed.answer.lookup_secret) == (
        "limit_reached",
        None,
        None,
    )
    assert retried.answer is not None and retried.answer.order_no == won.answer.order_no


async def test_a_ticket_opens_only_for_the_device_it_was_issued_to(rt: Runtime, gate: Gate) -> None:
    flash = new_flash(rt, gate, flash_wait_s=0)
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=10)
    mine = a_device()
    try:
        queued = await attempt(flash, event_id, "ann", device=mine)
        assert queued.answer is not None and queued.answer.ticket is not None
        ticket = queued.answer.ticket
        answer = queued.answer
        while answer.result == "queued":
            await asyncio.sleep(0.01)
            answer = await flash.ticket(ticket, device=mine)

        assert answer.result == "won"
        for stranger in (a_device(), None):
            with pytest.raises(TicketNotFound):
                await flash.ticket(ticket, device=stranger)
    finally:
        await flash.close()


async def test_on_postgresql_a_batch_commits_on_a_loop_of_its_own_not_behind_the_servers_answers(
    rt: Runtime, flash: FlashSale, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    event_id = await given_event(rt, sku, stock=2)
    real_commit = flash_committer.commit_batch
    committed_on: list[str] = []

    async def watched(*args: object, **kwargs: object) -> object:
        committed_on.append(threading.current_thread().name)
        return await real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flash_committer, "commit_batch", watched)
    tried = await attempt(flash, event_id, "ann")

    assert tried.result == "won"
    assert committed_on == ["flash-sale commits" if rt.db.is_postgresql else threading.current_thread().name]


def commit_threads() -> int:
    return sum(thread.name == "flash-sale commits" for thread in threading.enumerate())


async def test_a_process_gets_ready_for_a_coming_event_before_its_storm(rt: Runtime, flash: FlashSale) -> None:
    before = commit_threads()  # other tests' sales, if any are still closing
    await flash.warm()
    idle = commit_threads()
    sku = await given_sku_with_codes(rt, 5)
    event_id = await given_event(rt, sku, stock=2, starts_in_s=600)

    await flash.warm()
    coming = commit_threads()
    shown = await flash.public_event(event_id)
    await flash.warm()

    assert idle == before  # nothing to come: no thread, no connections
    assert shown.status == "scheduled"
    # On PostgreSQL the commit loop and its connections are up before the first purchase; SQLite has none.
    assert coming == before + (1 if rt.db.is_postgresql else 0)
    assert commit_threads() == coming  # warming again, or a buyer looking at the event, starts nothing more
