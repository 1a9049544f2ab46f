"""Sold out known without a round trip: the frozen gate answers as the gate would, and is forgotten the moment
tokens may come back, in this process and (Redis) in every other."""

import asyncio

import pytest
from redis.asyncio import Redis
from tests.support.builders import given_sku_with_codes
from tests.support.flash import a_device, given_event, new_flash, redis_client

from kaquan.flashsale.gate import Gate, RedisGate, Settlement
from kaquan.flashsale.keys import buyer_tag, device_tag, ip_tag, purchase_key
from kaquan.flashsale.purchase import FlashSale
from kaquan.flashsale.sold_out import SoldOut, SoldOutBoard
from kaquan.runtime import Runtime

LIMITS = {"limit": 1, "ip_limit": 2, "device_limit": 1}


async def admit(gate: Gate, event_id: int, buyer: str, request: str, *, ip: str = "ip-a", device: str = "dev-a") -> str:
    admission = await gate.admit(
        event_id,
        buyer,
        1,
        limit=LIMITS["limit"],
        request=request,
        now_ms=1,
        stale_ms=60_000,
        ip=ip,
        ip_limit=LIMITS["ip_limit"],
        device=device,
        device_limit=LIMITS["device_limit"],
    )
    return admission.verdict


async def test_the_frozen_gate_refuses_exactly_what_the_gate_answers_sold_out(gate: Gate) -> None:
    await gate.load(7, tokens=2, buyers={}, open=True, ttl_s=60)
    assert await gate.sold_out(7) is None  # tokens left: not sold out
    assert await admit(gate, 7, "ann", "r-ann", ip="ip-a", device="dev-a") == "admitted"
    assert await admit(gate, 7, "bob", "r-bob", ip="ip-a", device="dev-b") == "admitted"
    frozen = await gate.sold_out(7)
    assert frozen is not None

    asked = [
        ("ann", "r-ann", "ip-a", "dev-a"),  # a repeated request: duplicate, answered with its state
        ("ann", "r-new", "ip-z", "dev-z"),  # the buyer at its limit
        ("cat", "r-cat", "ip-a", "dev-c"),  # the address at its limit
        ("dan", "r-dan", "ip-d", "dev-b"),  # the device at its limit
        ("eve", "r-eve", "ip-e", "dev-e"),  # anyone else: sold out
        ("fay", "r-fay", "", ""),  # an in-process caller without address or device
    ]
    for buyer, request, ip, device in asked:
        refused = frozen.refuses(
            buyer=buyer,
            quantity=1,
            limit=LIMITS["limit"],
            request=request,
            ip=ip,
            ip_limit=LIMITS["ip_limit"],
            device=device,
            device_limit=LIMITS["device_limit"],
        )
        assert refused == (await admit(gate, 7, buyer, request, ip=ip, device=device) == "sold_out"), buyer


async def test_an_unchanged_gate_confirms_the_copy_held_and_a_changed_one_is_copied_anew(gate: Gate) -> None:
    await gate.load(11, tokens=1, buyers={}, open=True, ttl_s=60)
    assert await admit(gate, 11, "ann", "r-ann") == "admitted"
    first = await gate.sold_out(11)
    assert first is not None

    assert await gate.sold_out(11, first) is first  # nothing changed: the copy stands, the gate is not read again
    assert await admit(gate, 11, "bob", "r-bob", device="dev-b") == "sold_out"  # a refusal changes nothing
    assert await gate.sold_out(11, first) is first

    await gate.settle(11, [Settlement("ann", 1, "r-ann", give_back=False, state=None)], tokens_cap=0)
    second = await gate.sold_out(11, first)  # the request was forgotten: a new copy, without it
    assert second is not None and second is not first
    assert "r-ann" in first.requests and "r-ann" not in second.requests

    await gate.load(11, tokens=0, buyers={"ann": 1}, open=True, ttl_s=60)  # reloaded: a new stamp
    third = await gate.sold_out(11, second)
    assert third is not None and third is not second and third.stamp != second.stamp

    await gate.settle(11, [Settlement("ann", 1, "r-x", give_back=True, state=None)], tokens_cap=None)
    assert await gate.sold_out(11, third) is None  # a unit came back: not sold out


async def test_a_redis_gate_loaded_before_gates_kept_stamps_is_always_copied_anew(gate: Gate) -> None:
    if not isinstance(gate, RedisGate):
        pytest.skip("the in-process gate never outlives the code that stamps it")
    await gate.load(12, tokens=0, buyers={"ann": 1}, open=True, ttl_s=60)
    client = redis_client()
    await client.hdel(gate.keys(12)[0], "stamp")  # as an older release left it
    first = await gate.sold_out(12)
    assert first is not None and first.stamp is None

    again = await gate.sold_out(12, first)

    assert again is not None and again is not first
    await client.aclose()


async def test_a_closed_or_unloaded_event_is_never_known_sold_out(gate: Gate) -> None:
    assert await gate.sold_out(8) is None
    await gate.load(8, tokens=0, buyers={}, open=False, ttl_s=60)
    assert await gate.sold_out(8) is None


async def test_tokens_given_back_reloaded_or_a_closed_event_are_announced(gate: Gate) -> None:
    heard: list[int] = []
    gate.on_change(heard.append)
    await gate.load(9, tokens=1, buyers={}, open=True, ttl_s=60)  # tokens: announced
    assert await admit(gate, 9, "ann", "r1") == "admitted"
    await gate.settle(9, [Settlement("ann", 1, "r1", give_back=False, state="won")], tokens_cap=0)
    assert heard == [9]  # a won purchase changes nothing a sold-out answer depends on
    await gate.load(9, tokens=0, buyers={"ann": 1}, open=True, ttl_s=60)
    assert heard == [9]
    await gate.settle(9, [Settlement("ann", 1, "r1", give_back=True, state=None)], tokens_cap=None)
    await gate.close(9, ttl_s=60)
    assert heard == [9, 9, 9]


async def test_a_copy_read_while_a_change_is_announced_is_thrown_away() -> None:
    frozen = SoldOut(frozenset(), {}, {}, {})
    reading = asyncio.Event()
    release = asyncio.Event()

    async def read(event_id: int, held: SoldOut | None) -> SoldOut:
        reading.set()
        await release.wait()
        return frozen

    board = SoldOutBoard(read, max_age_s=60, listening=lambda: True)
    learning = asyncio.create_task(board.learn(1))
    await reading.wait()
    board.changed(1)  # tokens came back while the copy was on its way
    release.set()
    await learning
    assert board.get(1) is None

    release.set()
    await board.learn(1)
    assert board.get(1) is frozen


async def test_a_board_that_is_not_listening_or_too_old_knows_nothing() -> None:
    now = [0.0]
    listening = [True]
    frozen = SoldOut(frozenset(), {}, {}, {})

    async def read(event_id: int, held: SoldOut | None) -> SoldOut:
        return frozen

    board = SoldOutBoard(read, max_age_s=2, listening=lambda: listening[0], now=lambda: now[0])
    await board.learn(1)
    assert board.get(1) is frozen
    listening[0] = False  # the subscription was lost: a change may go unheard
    assert board.get(1) is None
    listening[0] = True
    now[0] = 1.5
    assert board.get(1) is frozen
    now[0] = 2.5
    assert board.get(1) is None


async def test_a_request_that_finds_the_copy_aged_out_while_the_next_is_read_waits_for_it() -> None:
    now = [0.0]
    first, second = SoldOut(frozenset(), {}, {}, {}), SoldOut(frozenset({"r"}), {}, {}, {})
    copies = [first, second, None]
    reading = asyncio.Event()
    release = asyncio.Event()

    async def read(event_id: int, held: SoldOut | None) -> SoldOut | None:
        copy = copies.pop(0)
        if copy is second:
            reading.set()
            await release.wait()
        return copy

    board = SoldOutBoard(read, max_age_s=2, listening=lambda: True, now=lambda: now[0])
    await board.learn(1)
    now[0] = 1.0
    refreshing = asyncio.create_task(board.learn(1))
    await reading.wait()
    now[0] = 2.5  # the first copy aged out while the second is on its way
    assert board.get(1) is None
    waiting = asyncio.create_task(board.current(1))
    await asyncio.sleep(0)
    assert not waiting.done()
    release.set()
    assert await waiting is second
    await refreshing

    await board.learn(1)  # the gate is no longer sold out: nobody waits for anything
    assert await board.current(1) is None


async def test_a_request_waits_for_a_copy_no_longer_than_the_copies_age_bound() -> None:
    async def read(event_id: int, held: SoldOut | None) -> SoldOut:
        await asyncio.Event().wait()  # a read that never comes back
        raise AssertionError("unreachable")

    board = SoldOutBoard(read, max_age_s=0.05, listening=lambda: True)
    learning = asyncio.create_task(board.learn(1))
    await asyncio.sleep(0)
    assert await board.current(1) is None
    learning.cancel()


def _knows(flash: FlashSale, event_id: int, buyer: str, device: str) -> bool:
    return flash.sold_out_at_once(
        event_id, buyer, 1, "r", channel="shop", buyer_ip="127.0.0.1", device=device, verified=None
    )


async def until(condition: object, *, tries: int = 500) -> None:
    for _ in range(tries):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came true")


async def test_a_sold_out_event_is_answered_at_once_until_a_unit_comes_back(
    rt: Runtime, flash: FlashSale, gate: Gate
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    event_id = await given_event(rt, sku, stock=1)
    device = a_device()
    assert (await flash.purchase(event_id, "ann", 1, "r1", buyer_ip="127.0.0.1", device=device)).result == "won"
    assert (await flash.purchase(event_id, "bob", 1, "r1", buyer_ip="127.0.0.1", device=a_device())).result == (
        "sold_out"
    )
    await until(lambda: flash.knows_sold_out(event_id))

    assert _knows(flash, event_id, "cat", a_device())
    # What the frozen gate must not answer: the winner's own retry (its order), the winner again (its limit).
    assert not flash.sold_out_at_once(
        event_id, "ann", 1, "r1", channel="shop", buyer_ip="127.0.0.1", device=device, verified=None
    )
    assert not _knows(flash, event_id, "ann", a_device())
    assert not _knows(flash, event_id, "cat", "too-short")  # bad input is the route's to refuse

    # A unit comes back (a failed commit, a refused purchase): every process forgets at once.
    key = purchase_key("dan", "r1", device_tag(a_device()))
    await gate.settle(
        event_id, [Settlement(buyer_tag("dan"), 1, key, True, None, ip_tag("127.0.0.1"), "")], tokens_cap=None
    )
    assert not flash.knows_sold_out(event_id)


async def test_requests_still_on_the_slow_path_once_the_copy_is_held_read_the_gate_no_more(
    rt: Runtime, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a storm hundreds of requests are past the fast path when the copy arrives; each read it again."""
    reads: list[int] = []
    read_gate = gate.sold_out

    async def counted(event_id: int, held: SoldOut | None = None) -> SoldOut | None:
        reads.append(event_id)
        return await read_gate(event_id, held)

    monkeypatch.setattr(gate, "sold_out", counted)
    flash = new_flash(rt, gate, flash_sold_out_s=60.0)  # no renewal during the test
    try:
        sku = await given_sku_with_codes(rt, 3)
        event_id = await given_event(rt, sku, stock=1)
        assert (await flash.purchase(event_id, "ann", 1, "r1", buyer_ip="127.0.0.1", device=a_device())).result == "won"
        assert (await flash.purchase(event_id, "bob", 1, "r", buyer_ip="127.0.0.1", device=a_device())).result == (
            "sold_out"
        )
        await until(lambda: flash.knows_sold_out(event_id))
        held = len(reads)

        for buyer in ("cat", "dan", "eve"):  # the slow path, as requests already past the fast path take it
            answer = await flash.purchase(event_id, buyer, 1, "r", buyer_ip="127.0.0.1", device=a_device())
            assert answer.result == "sold_out"
        await asyncio.sleep(0.05)

        assert held == 1 and len(reads) == held
    finally:
        await flash.close()


async def test_every_process_hears_that_a_unit_came_back(rt: Runtime, redis_or_none: Redis | None) -> None:
    """Two processes on one Redis gate: one gives a unit back, the other stops answering sold out at once."""
    if redis_or_none is None:
        pytest.skip("one process only: the in-process gate is not shared by design")
    client = redis_client()
    prefix = "kqtest-soldout-" + a_device()[:8] + ":"
    first = new_flash(rt, RedisGate(client, prefix=prefix))
    second = new_flash(rt, RedisGate(client, prefix=prefix))
    try:
        sku = await given_sku_with_codes(rt, 2)
        event_id = await given_event(rt, sku, stock=1)
        assert (await first.purchase(event_id, "ann", 1, "r1", buyer_ip="127.0.0.1", device=a_device())).result == (
            "won"
        )
        for sale in (first, second):
            assert (await sale.purchase(event_id, "bob", 1, "r1", buyer_ip="127.0.0.1", device=a_device())).result == (
                "sold_out"
            )
        await until(lambda: first.knows_sold_out(event_id) and second.knows_sold_out(event_id))

        await first.gate.settle(event_id, [Settlement("x", 1, "k", True, None)], tokens_cap=None)

        await until(lambda: not second.knows_sold_out(event_id))
        assert not first.knows_sold_out(event_id)
    finally:
        await first.close()
        await second.close()
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
