"""Velocity counters count each subject over fixed 1 min / 1 h / 24 h windows, in Redis or the database."""

import asyncio

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from tests.support.risk import windows_far_from_their_ends

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.risk import DatabaseCounters, RedisCounters, RiskContext, RiskEngine
from kaquan.risk.models import RiskCounter


async def test_each_window_counts_until_its_own_end(engine: RiskEngine) -> None:
    buy = RiskContext("shop.order", ip="203.0.113.7", device="device-token-of-one-browser", sku="GAME-100")
    for _ in range(3):
        decision = await engine.decide(buy)
    assert decision.features["ip.orders_1m"] == 3
    assert decision.features["device.orders_1h"] == 3
    assert decision.features["sku.orders_24h"] == 3

    clock.travel(60)  # 12:01:01: a new minute, the same hour and day
    decision = await engine.decide(buy)
    assert (decision.features["ip.orders_1m"], decision.features["ip.orders_1h"]) == (1, 4)

    clock.travel(3600)  # 13:01:01: a new hour, the same day
    decision = await engine.decide(buy)
    assert (decision.features["ip.orders_1h"], decision.features["ip.orders_24h"]) == (1, 5)

    clock.travel(86400)  # the next day
    decision = await engine.decide(buy)
    assert decision.features["ip.orders_24h"] == 1


async def test_neighbours_share_a_prefix_and_nothing_else(engine: RiskEngine) -> None:
    for host in range(1, 6):
        decision = await engine.decide(RiskContext("shop.order", ip=f"198.51.100.{host}"))
    assert decision.features["prefix.orders_1m"] == 5
    assert decision.features["ip.orders_1m"] == 1
    v6 = await engine.decide(RiskContext("shop.order", ip="2001:db8:1:2::9"))
    v6_neighbour = await engine.decide(RiskContext("shop.order", ip="2001:db8:1:2:ffff::1"))
    other_64 = await engine.decide(RiskContext("shop.order", ip="2001:db8:1:3::9"))
    assert (v6.features["prefix.orders_1m"], v6_neighbour.features["prefix.orders_1m"]) == (1, 2)
    assert other_64.features["prefix.orders_1m"] == 1


async def test_a_request_without_a_subject_counts_nothing_for_it(engine: RiskEngine) -> None:
    decision = await engine.decide(RiskContext("agent.order", agent="agent:7", sku="GAME-100"))
    assert decision.features["agent.orders_1m"] == 1
    assert "ip.orders_1m" not in decision.features
    assert decision.features["device.new"] is True


async def test_without_redis_processes_share_their_counts_once_written(db: Database) -> None:
    windows_far_from_their_ends()
    first, second = DatabaseCounters(db), DatabaseCounters(db)
    for _ in range(3):
        await first.hit(["ip:203.0.113.7"])
    await first.close()

    assert (await second.hit(["ip:203.0.113.7"]))[("ip:203.0.113.7", "1m")] == 1  # its own, until it writes
    await second.flush()
    seen = await second.hit(["ip:203.0.113.7"])
    assert (seen[("ip:203.0.113.7", "1m")], seen[("ip:203.0.113.7", "24h")]) == (5, 5)
    await second.close()
    async with db.read() as session:
        stored = await session.execute(select(RiskCounter.key, RiskCounter.hits).order_by(RiskCounter.key))
    assert [(key, hits) for key, hits in stored] == [
        ("ip:203.0.113.7:orders:1h", 5),
        ("ip:203.0.113.7:orders:1m", 5),
        ("ip:203.0.113.7:orders:24h", 5),
    ]


async def test_redis_out_of_reach_is_an_honest_busy_never_a_500() -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(Busy) as refused:
        await RedisCounters(unreachable).hit(["ip:203.0.113.7"])
    assert (refused.value.status, refused.value.retry_after) == (503, 1)
    await unreachable.aclose()


async def test_failures_are_counted_when_they_happen_and_read_at_the_next_attempt_without_counting(
    engine: RiskEngine,
) -> None:
    attempt = RiskContext("redeem", ip="198.51.100.4", account="till@example.com")
    first = await engine.decide(attempt)
    await engine.failed(attempt)
    await engine.failed(attempt)
    second = await engine.decide(attempt)
    third = await engine.decide(attempt)

    assert first.features["account.redeem_failures_1h"] == 0
    assert second.features["account.redeem_failures_1h"] == 2 and third.features["ip.redeem_failures_24h"] == 2
    assert third.features["ip.redeems_1m"] == 3 and "ip.orders_1m" not in third.features


async def test_hits_being_written_still_count_while_their_flush_is_under_way(db: Database) -> None:
    windows_far_from_their_ends()
    counters = DatabaseCounters(db)
    await counters.hit(["ip:203.0.113.8"])
    flushing = asyncio.create_task(counters.flush())
    await asyncio.sleep(0)  # the flush took the pending hits and waits for the database

    during = await counters.hit(["ip:203.0.113.8"])
    await flushing
    after = await counters.hit(["ip:203.0.113.8"])
    await counters.close()

    assert during[("ip:203.0.113.8", "1h")] == 2
    assert after[("ip:203.0.113.8", "1h")] == 3
