"""Velocity counters: hits per subject over fixed 1 min / 1 h / 24 h windows, in Redis or in the database.

A window is fixed to the clock (the 1 h window of 10:17 is 10:00–11:00), so one hit is one increment
per window and one round trip covers every subject of a request: one small script call for all of them
on one Redis server, a pipeline of one call per subject on a Redis Cluster (a script's keys must share a
slot there). One call, not one per subject, because the client's own work per command (packing, then
reading and parsing each reply) was most of a decision's CPU time (`kaquan bench risk`, docs/risk.md).
Without Redis the hits are counted in the process and written behind the requests, a second's worth
in one multi-row upsert (`DatabaseCounters`). Redis keys carry the subject as a hash tag
(`kaquan:risk:{ip:1.2.3.4}:orders:60:…`), so a subject's windows stay on one Redis Cluster slot.
"""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy import Table, delete

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.kit.keyvalue import RedisClient
from kaquan.kit.redis_scripts import PipelinedScript
from kaquan.risk.features import COUNTED, WINDOWS
from kaquan.risk.models import RiskCounter

log = logging.getLogger(__name__)
Counts = dict[tuple[str, str], int]  # (subject key, window name) → hits, this one included
KEPT_S = 2 * max(WINDOWS.values())


class VelocityCounters(Protocol):
    async def hit(self, subjects: Sequence[str], what: str = COUNTED) -> Counts:
        """Count one `what` (orders, redeems, redeem_failures, …) for each subject key in every window; return
        each window's count."""
        ...

    async def peek(self, subjects: Sequence[str], what: str) -> Counts:
        """Each window's count of `what` for each subject, counting nothing (failures are counted as they happen
        and read at the next attempt)."""
        ...

    async def prune(self) -> None:
        """Forget windows that ended long ago."""
        ...

    async def flush(self) -> None:
        """Write now what is held in the process, for a reader of the counters' table."""
        ...

    async def close(self) -> None:
        """Write what is still held in the process."""
        ...


# One subject's windows in one call: INCR each, and give a new key its lifetime. All keys of a call carry
# the subject's hash tag, so the script is Redis Cluster safe.
_HIT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[i]) end
end
return counts
"""
# Every subject's windows in one call (one Redis server): ARGV[1] is the number of windows per subject, then
# each window's lifetime; the keys are the subjects' windows, subject after subject.
_HIT_ALL = """
local windows = tonumber(ARGV[1])
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[2 + (i - 1) % windows]) end
end
return counts
"""


def window_keys(subject: str, buckets: dict[str, int], what: str = COUNTED) -> list[str]:
    """The keys one script call counts a subject's windows in: one hash tag, the subject, so one cluster slot."""
    return [f"kaquan:risk:{{{subject}}}:{what}:{WINDOWS[window]}:{bucket}" for window, bucket in buckets.items()]


def buckets_at(now_s: int) -> dict[str, int]:
    """Each window's start at unix time `now_s`."""
    return {window: now_s - now_s % length for window, length in WINDOWS.items()}


class RedisCounters:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self._hit_all = PipelinedScript(redis, _HIT_ALL)
        self._hit_one_sha = hashlib.sha1(_HIT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    async def hit(self, subjects: Sequence[str], what: str = COUNTED) -> Counts:
        if not subjects:
            return {}
        buckets = buckets_at(int(clock.now().timestamp()))
        lifetimes = [WINDOWS[window] + 60 for window in buckets]
        try:
            replies = await self._send(subjects, what, buckets, lifetimes)
        except RedisError as exc:  # a burst past the connection pool, or Redis away: shed load, never a 500
            raise Busy("risk control is busy; try again", retry_after=1) from exc
        return {
            (subject, window): int(hits)
            for subject, counts in zip(subjects, replies, strict=True)
            for window, hits in zip(buckets, counts, strict=True)
        }

    async def _send(
        self, subjects: Sequence[str], what: str, buckets: dict[str, int], lifetimes: list[int]
    ) -> list[Any]:
        """One script call for every subject, sent with other requests' calls (`kit.redis_scripts`), or on a
        cluster one call per subject in one pipeline; each subject's counts."""
        if not self._cluster:
            keys = [key for subject in subjects for key in window_keys(subject, buckets, what)]
            flat = await self._hit_all(keys, [len(buckets), *lifetimes])
            width = len(buckets)
            return [flat[i : i + width] for i in range(0, len(flat), width)]
        try:
            return await self._send_each(subjects, what, buckets, lifetimes)
        except NoScriptError:  # a Redis that restarted or never saw the script: load it once, again
            await self._redis.script_load(_HIT)
            return await self._send_each(subjects, what, buckets, lifetimes)

    async def _send_each(
        self, subjects: Sequence[str], what: str, buckets: dict[str, int], lifetimes: list[int]
    ) -> list[Any]:
        """One EVALSHA per subject in one pipeline (redis-py's Script in a pipeline would first ask SCRIPT EXISTS,
        a second round trip every time)."""
        pipe = self._redis.pipeline(transaction=False)
        for subject in subjects:
            keys = window_keys(subject, buckets, what)
            pipe.evalsha(self._hit_one_sha, len(keys), *keys, *lifetimes)
        return list(await pipe.execute())

    async def peek(self, subjects: Sequence[str], what: str) -> Counts:
        if not subjects:
            return {}
        buckets = buckets_at(int(clock.now().timestamp()))
        try:
            if self._cluster:
                pipe = self._redis.pipeline(transaction=False)
                for subject in subjects:
                    pipe.mget(window_keys(subject, buckets, what))  # one subject's keys share a slot
                replies = await pipe.execute()
            else:
                flat = await self._redis.mget([key for s in subjects for key in window_keys(s, buckets, what)])
                replies = [flat[i : i + len(buckets)] for i in range(0, len(flat), len(buckets))]
        except RedisError as exc:
            raise Busy("risk control is busy; try again", retry_after=1) from exc
        return {
            (subject, window): int(hits or 0)
            for subject, counts in zip(subjects, replies, strict=True)
            for window, hits in zip(buckets, counts, strict=True)
        }

    async def prune(self) -> None:
        """Redis expires the keys itself."""

    async def flush(self) -> None:
        """Every hit is in Redis already."""

    async def close(self) -> None:
        """Every hit is in Redis already."""


class DatabaseCounters:
    """The counters in `risk_counters`, for deployments without Redis, written behind the requests.

    A hit counts in this process at once and reaches the database with the other hits of the same
    second, in one upsert (`hits = hits + n`) that answers each key's total across every process: so
    within one process the counts are exact, and another process's hits show up within `flush_s`.
    The totals are kept for at most `MAX_KNOWN` keys of the current windows; past that the oldest are
    forgotten, and read as this process's own hits until their next flush (Redis has no such limit).
    """

    MAX_KNOWN = 100_000

    def __init__(self, db: Database, *, flush_s: float = 1.0) -> None:
        self._db = db
        self._flush_s = flush_s
        self._known: dict[tuple[str, int], int] = {}  # (key, bucket) → total in the database at the last flush
        self._pending: dict[tuple[str, int], int] = {}  # hits not written yet
        self._writing: dict[tuple[str, int], int] = {}  # hits a flush is writing now: still counted meanwhile
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._current: frozenset[int] = frozenset()

    async def hit(self, subjects: Sequence[str], what: str = COUNTED) -> Counts:
        buckets = buckets_at(int(clock.now().timestamp()))
        counts: Counts = {}
        for subject in subjects:
            for window, bucket in buckets.items():
                where = (f"{subject}:{what}:{window}", bucket)
                self._pending[where] = self._pending.get(where, 0) + 1
                counts[(subject, window)] = self._total(where)
        if subjects and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._flush_soon())
        return counts

    async def peek(self, subjects: Sequence[str], what: str) -> Counts:
        """What this process knows: its own counts, and the totals it learned at its last write of each key."""
        buckets = buckets_at(int(clock.now().timestamp()))
        counts: Counts = {}
        for subject in subjects:
            for window, bucket in buckets.items():
                where = (f"{subject}:{what}:{window}", bucket)
                counts[(subject, window)] = self._total(where)
        return counts

    async def _flush_soon(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self._flush_s)
        await self.flush()

    def _total(self, where: tuple[str, int]) -> int:
        return self._known.get(where, 0) + self._writing.get(where, 0) + self._pending.get(where, 0)

    async def flush(self) -> None:
        """Write the pending hits now and learn every touched key's total."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        for where, hits in pending.items():
            self._writing[where] = self._writing.get(where, 0) + hits
        rows = [{"key": key, "bucket": bucket, "hits": hits} for (key, bucket), hits in sorted(pending.items())]
        try:
            async with self._db.transaction() as session:  # sorted: concurrent flushes lock rows in one order
                totals = list((await session.execute(self._upsert(), rows)).all())
        except Exception:  # keep the hits for the next flush rather than lose them
            self._written(pending)
            for where, hits in pending.items():
                self._pending[where] = self._pending.get(where, 0) + hits
            log.exception("could not write %d risk counters", len(pending))
            return
        self._written(pending)
        for key, bucket, hits in totals:
            self._known.pop((key, bucket), None)
            self._known[(key, bucket)] = int(hits)
        self._forget_old()

    def _written(self, pending: dict[tuple[str, int], int]) -> None:
        for where, hits in pending.items():
            left = self._writing.pop(where, 0) - hits
            if left > 0:
                self._writing[where] = left

    def _upsert(self) -> Any:
        """One statement for many rows: SQLAlchemy sends them in a few multi-row batches ("insertmanyvalues")."""
        table: Table = RiskCounter.__table__  # type: ignore[assignment]
        stmt = self._db.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key", "bucket"], set_={"hits": table.c.hits + stmt.excluded.hits}
        )
        return stmt.returning(table.c.key, table.c.bucket, table.c.hits)

    def _forget_old(self) -> None:
        current = frozenset(buckets_at(int(clock.now().timestamp())).values())
        if current != self._current:  # a window turned (once a minute): drop the totals of the ended ones
            self._current = current
            self._known = {where: hits for where, hits in self._known.items() if where[1] in current}
        while len(self._known) > self.MAX_KNOWN:
            del self._known[next(iter(self._known))]

    async def close(self) -> None:
        """Write every hit now: a flush waiting for its second goes at once and is waited for (a flush cut
        short by a cancel would lose the hits it was writing)."""
        self._closing.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def prune(self) -> None:
        oldest = int(clock.now().timestamp()) - KEPT_S
        async with self._db.transaction() as session:
            await session.execute(delete(RiskCounter).where(RiskCounter.bucket < oldest))
