"""Fixed-window rate limits: in memory for one process, in Redis across processes."""

import math
import time
from collections.abc import Callable
from typing import Protocol

from kaquan.kit.errors import RateLimited
from kaquan.kit.keyvalue import RedisClient
from kaquan.kit.redis_scripts import PipelinedScript


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_s: int) -> int:
        """Count one hit; return 0 when allowed, else the seconds until the window resets."""
        ...

    async def undo(self, key: str, *, window_s: int) -> None:
        """Take back one hit of the current window (an attempt that turned out not to count)."""
        ...


class MemoryRateLimiter:
    """One process's counters. A key's window opens at its first hit and lasts `window_s`, as in Redis
    (INCR, then EXPIRE on the first), so both limiters count alike and no window edge splits a burst."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        """`now`: seconds on any steady scale (tests pass one that follows `kit.clock`)."""
        self._now = now
        self._windows: dict[str, tuple[float, int]] = {}  # key → (window end, hits)

    async def hit(self, key: str, *, limit: int, window_s: int) -> int:
        return self.hit_now(key, limit=limit, window_s=window_s)

    def hit_now(self, key: str, *, limit: int, window_s: int) -> int:
        """`hit` without the await, for a caller on a hot path (it never waits for anything)."""
        now = self._now()
        ends, count = self._windows.get(key, (now + window_s, 0))
        if ends <= now:
            ends, count = now + window_s, 0
        count += 1
        self._windows[key] = (ends, count)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        return 0 if count <= limit else max(1, math.ceil(ends - now))

    async def undo(self, key: str, *, window_s: int) -> None:
        ends, count = self._windows.get(key, (0.0, 0))
        if ends > self._now() and count > 0:
            self._windows[key] = (ends, count - 1)


_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then return redis.call('TTL', KEYS[1]) end
return 0
"""
# Never below zero, and never on an expired window: an undo must not create a key without a TTL.
_UNDO = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisRateLimiter:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._hit = PipelinedScript(redis, _HIT)
        self._undo = redis.register_script(_UNDO)

    async def hit(self, key: str, *, limit: int, window_s: int) -> int:
        wait = int(await self._hit([f"kaquan:rl:{key}"], [window_s, limit]))
        return max(wait, 1) if wait else 0

    async def undo(self, key: str, *, window_s: int) -> None:
        await self._undo(keys=[f"kaquan:rl:{key}"])


async def enforce(limiter: RateLimiter, key: str, *, limit: int, window_s: int, what: str) -> None:
    wait = await limiter.hit(key, limit=limit, window_s=window_s)
    if wait:
        raise RateLimited(f"too many {what}; try again in {wait} s", retry_after=wait)
