"""The admission gate, in process and in Redis: one interface, the same answers.

The gate decides without the database: open or closed, a repeated request, the
per-buyer limit, tokens left. One `admit` checks all of them and takes what it
admits atomically, so no number of concurrent callers gets more than the tokens.
"""

import asyncio

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from tests.support.flash import redis_client

from kaquan.flashsale.gate import Gate, GateView, RedisGate, Settlement

EVENT = 7
NOW_MS = 1_000_000
STALE_MS = 60_000
TTL_S = 600


async def admit(
    gate: Gate, buyer: str, quantity: int = 1, *, request: str, limit: int = 2, now_ms: int = NOW_MS
) -> str:
    admission = await gate.admit(EVENT, buyer, quantity, limit=limit, request=request, now_ms=now_ms, stale_ms=STALE_MS)
    return admission.verdict


async def test_an_event_the_gate_never_loaded_is_unloaded_not_sold_out(gate: Gate) -> None:
    assert await admit(gate, "ann", request="r1") == "unloaded"
    assert await gate.view(EVENT) is None


async def test_tokens_are_taken_until_none_are_left(gate: Gate) -> None:
    await gate.load(EVENT, tokens=3, buyers={}, open=True, ttl_s=TTL_S)

    verdicts = [await admit(gate, f"buyer-{n}", request=f"r{n}") for n in range(5)]

    assert verdicts == ["admitted", "admitted", "admitted", "sold_out", "sold_out"]
    assert await gate.view(EVENT) == GateView(tokens=0, open=True, buyers=3)


async def test_a_buyer_is_held_to_the_limit_counting_units_not_requests(gate: Gate) -> None:
    await gate.load(EVENT, tokens=10, buyers={"bob": 1}, open=True, ttl_s=TTL_S)

    assert await admit(gate, "bob", 2, request="r1", limit=2) == "limit_reached"
    assert await admit(gate, "bob", 1, request="r2", limit=2) == "admitted"
    assert await admit(gate, "bob", 1, request="r3", limit=2) == "limit_reached"
    assert await admit(gate, "ann", 2, request="r4", limit=2) == "admitted"
    assert (await gate.view(EVENT)) == GateView(tokens=7, open=True, buyers=2)


async def test_a_request_asking_more_than_is_left_is_sold_out_and_takes_nothing(gate: Gate) -> None:
    await gate.load(EVENT, tokens=1, buyers={}, open=True, ttl_s=TTL_S)

    assert await admit(gate, "ann", 2, request="r1") == "sold_out"
    assert await admit(gate, "bob", 1, request="r2") == "admitted"


async def test_a_closed_event_admits_nobody(gate: Gate) -> None:
    await gate.load(EVENT, tokens=5, buyers={}, open=True, ttl_s=TTL_S)
    await gate.close(EVENT, ttl_s=TTL_S)

    assert await admit(gate, "ann", request="r1") == "closed"
    assert await gate.view(EVENT) == GateView(tokens=0, open=False, buyers=0)


async def test_a_repeated_request_is_recognised_and_takes_nothing_more(gate: Gate) -> None:
    await gate.load(EVENT, tokens=5, buyers={}, open=True, ttl_s=TTL_S)
    assert await admit(gate, "ann", request="r1") == "admitted"

    again = await gate.admit(EVENT, "ann", 1, limit=2, request="r1", now_ms=NOW_MS + 10, stale_ms=STALE_MS)

    assert (again.verdict, again.state) == ("duplicate", "pending")
    assert await gate.request_state(EVENT, "r1") == "pending"
    assert (await gate.view(EVENT)) == GateView(tokens=4, open=True, buyers=1)


async def test_a_request_pending_past_the_stale_time_was_lost_and_is_admitted_afresh(gate: Gate) -> None:
    await gate.load(EVENT, tokens=5, buyers={}, open=True, ttl_s=TTL_S)
    assert await admit(gate, "ann", request="r1") == "admitted"

    assert await admit(gate, "ann", request="r1", now_ms=NOW_MS + STALE_MS - 1) == "duplicate"
    assert await admit(gate, "ann", request="r1", now_ms=NOW_MS + STALE_MS) == "admitted"


async def test_settling_gives_back_what_the_database_did_not_take_and_records_the_outcome(gate: Gate) -> None:
    await gate.load(EVENT, tokens=5, buyers={}, open=True, ttl_s=TTL_S)
    for buyer, request in (("ann", "r1"), ("bob", "r2"), ("cat", "r3")):
        assert await admit(gate, buyer, request=request) == "admitted"

    await gate.settle(
        EVENT,
        [
            Settlement("ann", 1, "r1", give_back=False, state="won"),
            Settlement("bob", 1, "r2", give_back=True, state="sold_out"),
            Settlement("cat", 1, "r3", give_back=True, state=None),
        ],
        tokens_cap=None,
    )

    assert await gate.view(EVENT) == GateView(tokens=4, open=True, buyers=1)
    assert [await gate.request_state(EVENT, r) for r in ("r1", "r2", "r3")] == ["won", "sold_out", None]
    assert await admit(gate, "ann", request="r1") == "duplicate"
    assert await admit(gate, "cat", request="r3") == "admitted"  # forgotten: a retry is admitted afresh


async def test_the_tokens_are_capped_at_what_the_event_still_holds(gate: Gate) -> None:
    await gate.load(EVENT, tokens=50, buyers={}, open=True, ttl_s=TTL_S)

    await gate.settle(EVENT, [], tokens_cap=3)
    assert (await gate.view(EVENT)) == GateView(tokens=3, open=True, buyers=0)
    await gate.settle(EVENT, [], tokens_cap=10)
    assert (await gate.view(EVENT)) == GateView(tokens=3, open=True, buyers=0)


async def test_settling_an_event_the_gate_forgot_changes_nothing(gate: Gate) -> None:
    await gate.settle(EVENT, [Settlement("ann", 1, "r1", give_back=True, state="sold_out")], tokens_cap=5)

    assert await gate.view(EVENT) is None
    assert await admit(gate, "ann", request="r1") == "unloaded"


async def test_a_load_replaces_the_counters_but_keeps_the_requests_of_an_open_event(gate: Gate) -> None:
    await gate.load(EVENT, tokens=5, buyers={}, open=True, ttl_s=TTL_S)
    assert await admit(gate, "ann", request="r1") == "admitted"

    await gate.load(EVENT, tokens=5, buyers={"bob": 2}, open=True, ttl_s=TTL_S)

    assert await gate.view(EVENT) == GateView(tokens=5, open=True, buyers=1)
    assert await gate.request_state(EVENT, "r1") == "pending"
    assert await admit(gate, "bob", request="r2", limit=2) == "limit_reached"


async def test_two_hundred_concurrent_admissions_never_take_more_than_the_tokens(gate: Gate) -> None:
    await gate.load(EVENT, tokens=50, buyers={}, open=True, ttl_s=TTL_S)

    verdicts = await asyncio.gather(*(admit(gate, f"buyer-{n % 120}", request=f"r{n}") for n in range(200)))

    assert verdicts.count("admitted") == 50
    assert set(verdicts) == {"admitted", "sold_out", "limit_reached"} or set(verdicts) == {"admitted", "sold_out"}
    view = await gate.view(EVENT)
    assert view is not None
    assert view.tokens == 0


async def test_without_one_atomic_step_the_race_is_real(redis_or_none: Redis | None, gate: Gate) -> None:
    """The control experiment: check the tokens, then take them, in two Redis calls: concurrent buyers overrun."""
    if redis_or_none is None:
        pytest.skip("the in-process gate never awaits inside an admission: there is no step to split")
    assert isinstance(gate, RedisGate)
    tokens_key = gate.keys(EVENT)[0]
    await gate.load(EVENT, tokens=50, buyers={}, open=True, ttl_s=TTL_S)
    client = redis_client()

    async def naive_admit() -> bool:
        if int(await client.hget(tokens_key, "tokens") or 0) < 1:
            return False
        await client.hincrby(tokens_key, "tokens", -1)
        return True

    try:
        admitted = await asyncio.gather(*(naive_admit() for _ in range(200)))
    finally:
        await client.aclose()

    assert sum(admitted) > 50


async def test_two_processes_share_one_redis_gate(redis_or_none: Redis | None, gate: Gate) -> None:
    if redis_or_none is None:
        pytest.skip("one process only: the in-process gate is not shared by design")
    assert isinstance(gate, RedisGate)
    other_client = redis_client()
    try:
        other = RedisGate(other_client, prefix=gate.keys(EVENT)[0].split("{")[0])
        await gate.load(EVENT, tokens=40, buyers={}, open=True, ttl_s=TTL_S)

        verdicts = await asyncio.gather(
            *(admit(gate if n % 2 else other, f"buyer-{n}", request=f"r{n}") for n in range(100))
        )

        assert verdicts.count("admitted") == 40
        assert await other.view(EVENT) == GateView(tokens=0, open=True, buyers=40)
    finally:
        await other_client.aclose()


async def test_an_address_and_a_device_are_held_to_their_limits_whatever_the_buyer(gate: Gate) -> None:
    await gate.load(EVENT, tokens=10, buyers={}, open=True, ttl_s=TTL_S)

    async def from_(buyer: str, ip: str, device: str) -> str:
        admission = await gate.admit(
            EVENT,
            buyer,
            1,
            limit=1,
            request=f"{buyer}/{ip}/{device}",
            now_ms=NOW_MS,
            stale_ms=STALE_MS,
            ip=ip,
            ip_limit=3,
            device=device,
            device_limit=2,
        )
        return admission.verdict

    # Five made-up buyers on one device: the device's limit holds them to two.
    assert [await from_(f"b{n}", "ip-1", "dev-1") for n in range(5)] == ["admitted"] * 2 + ["limit_reached"] * 3
    # New devices on the same address: the address holds them to three in all.
    assert [await from_(f"c{n}", "ip-1", f"dev-{n + 2}") for n in range(3)] == [
        "admitted",
        "limit_reached",
        "limit_reached",
    ]
    assert await from_("d", "ip-2", "dev-9") == "admitted"
    assert await gate.view(EVENT) == GateView(tokens=6, open=True, buyers=4)


async def test_settling_gives_back_the_address_and_device_counts_too(gate: Gate) -> None:
    await gate.load(EVENT, tokens=10, buyers={}, open=True, ttl_s=TTL_S, ips={"ip-1": 1}, devices={"dev-1": 1})
    limits = {"limit": 5, "now_ms": NOW_MS, "stale_ms": STALE_MS, "ip_limit": 2, "device_limit": 2}

    admitted = await gate.admit(EVENT, "ann", 1, request="r-1", ip="ip-1", device="dev-1", **limits)
    refused = await gate.admit(EVENT, "bob", 1, request="r-2", ip="ip-1", device="dev-2", **limits)
    await gate.settle(
        EVENT, [Settlement("ann", 1, "r-1", give_back=True, state=None, ip="ip-1", device="dev-1")], tokens_cap=None
    )
    again = await gate.admit(EVENT, "bob", 1, request="r-2", ip="ip-1", device="dev-2", **limits)

    assert (admitted.verdict, refused.verdict, again.verdict) == ("admitted", "limit_reached", "admitted")


def test_every_key_of_an_event_lies_in_one_redis_cluster_slot() -> None:
    gate = RedisGate(Redis.from_url("redis://cluster.invalid:6379/0"))  # naming keys never connects

    keys = gate.keys(EVENT)

    assert len(keys) == 5  # state, buyers, requests, addresses, devices
    assert all("{flash:7}" in key for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert key_slot(gate.keys(8)[0].encode()) != key_slot(keys[0].encode())
