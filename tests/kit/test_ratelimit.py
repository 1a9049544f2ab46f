"""Rate limits hold per key and window, in memory and across processes in Redis."""

import pytest
from redis.asyncio import Redis

from kaquan.kit.errors import RateLimited
from kaquan.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, enforce


def _limiter(redis: Redis | None) -> RateLimiter:
    return MemoryRateLimiter() if redis is None else RedisRateLimiter(redis)


async def test_the_limit_allows_exactly_n_hits_per_window_then_says_when_to_retry(
    redis_or_none: Redis | None,
) -> None:
    limiter = _limiter(redis_or_none)

    waits = [await limiter.hit("lookup:203.0.113.9", limit=3, window_s=60) for _ in range(5)]

    assert waits[:3] == [0, 0, 0]
    assert all(1 <= wait <= 60 for wait in waits[3:])


async def test_keys_are_limited_independently(redis_or_none: Redis | None) -> None:
    limiter = _limiter(redis_or_none)
    for _ in range(3):
        await limiter.hit("lookup:a", limit=3, window_s=60)

    assert await limiter.hit("lookup:b", limit=3, window_s=60) == 0
    assert await limiter.hit("lookup:a", limit=3, window_s=60) > 0


async def test_enforce_raises_rate_limited_with_retry_after(redis_or_none: Redis | None) -> None:
    limiter = _limiter(redis_or_none)
    await enforce(limiter, "k", limit=1, window_s=30, what="tries")

    with pytest.raises(RateLimited) as refused:
        await enforce(limiter, "k", limit=1, window_s=30, what="tries")

    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 30


async def test_two_processes_share_one_redis_limit(redis_or_none: Redis | None) -> None:
    if redis_or_none is None:
        pytest.skip("the in-process limiter is for one process by design")
    first, second = RedisRateLimiter(redis_or_none), RedisRateLimiter(redis_or_none)

    assert await first.hit("shared", limit=2, window_s=60) == 0
    assert await second.hit("shared", limit=2, window_s=60) == 0
    assert await first.hit("shared", limit=2, window_s=60) > 0


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_in_process_window_opens_at_its_first_hit_so_a_burst_is_never_split_by_a_window_edge() -> None:
    clock = ManualClock()
    limiter = MemoryRateLimiter(now=clock)
    clock.now = 1059.9  # just before a minute boundary: an aligned window would reset 0.1 s later
    assert [await limiter.hit("k", limit=2, window_s=60) for _ in range(2)] == [0, 0]

    clock.now = 1060.5
    assert await limiter.hit("k", limit=2, window_s=60) == 60

    clock.now = 1119.8
    assert await limiter.hit("k", limit=2, window_s=60) == 1
    clock.now = 1119.9
    assert await limiter.hit("k", limit=2, window_s=60) == 0


async def test_an_undo_takes_back_a_hit_of_the_open_window_only() -> None:
    clock = ManualClock()
    limiter = MemoryRateLimiter(now=clock)
    await limiter.hit("k", limit=1, window_s=60)
    await limiter.undo("k", window_s=60)
    assert await limiter.hit("k", limit=1, window_s=60) == 0

    clock.now += 60
    await limiter.undo("k", window_s=60)  # the window has closed: nothing to take back
    assert await limiter.hit("k", limit=1, window_s=60) == 0
    assert await limiter.hit("k", limit=1, window_s=60) == 60
