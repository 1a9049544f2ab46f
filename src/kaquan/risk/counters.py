"""Velocity counters: hits per subject over fixed 1 min / 1 h / 24 h windows, in Redis or in the database.

A window is fixed to the clock (the 1 h window of 10:17 is 10:00–11:00), so one hit is one increment
per window and one round trip covers every subject of a request: a pipeline of INCR/EXPIRE in Redis,
one multi-row upsert in the database. Redis keys carry the subject as a hash tag
(`kaquan:risk:{ip:1.2.3.4}:orders:60:…`), so a subject's windows stay on one Redis Cluster slot.
"""

from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import Table, delete

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk.features import COUNTED, WINDOWS
from kaquan.risk.models import RiskCounter

Counts = dict[tuple[str, str], int]  # (subject key, window name) → hits, this one included
KEPT_S = 2 * max(WINDOWS.values())


def _buckets(now_s: int) -> dict[str, int]:
    return {window: now_s - now_s % length for window, length in WINDOWS.items()}


class VelocityCounters(Protocol):
    async def hit(self, subjects: Sequence[str]) -> Counts:
        """Count one hit for each subject key in every window; return each window's hits."""
        ...

    async def prune(self) -> None:
        """Forget windows that ended long ago."""
        ...


class RedisCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def hit(self, subjects: Sequence[str]) -> Counts:
        if not subjects:
            return {}
        buckets = _buckets(int(clock.now().timestamp()))
        order: list[tuple[str, str]] = []
        pipe = self._redis.pipeline(transaction=False)
        for subject in subjects:
            for window, bucket in buckets.items():
                key = f"kaquan:risk:{{{subject}}}:{COUNTED}:{WINDOWS[window]}:{bucket}"
                pipe.incr(key)
                pipe.expire(key, WINDOWS[window] + 60)
                order.append((subject, window))
        replies = await pipe.execute()
        return {where: int(replies[2 * index]) for index, where in enumerate(order)}

    async def prune(self) -> None:
        """Redis expires the keys itself."""


class DatabaseCounters:
    """The counters in `risk_counters`, for deployments without Redis: one upsert per decision."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def hit(self, subjects: Sequence[str]) -> Counts:
        if not subjects:
            return {}
        buckets = _buckets(int(clock.now().timestamp()))
        rows = sorted(
            {(f"{subject}:{COUNTED}:{window}", bucket) for subject in subjects for window, bucket in buckets.items()}
        )  # one order of keys for every transaction: concurrent upserts never deadlock
        table: Table = RiskCounter.__table__  # type: ignore[assignment]
        stmt = self._db.insert(table).values([{"key": key, "bucket": bucket, "hits": 1} for key, bucket in rows])
        stmt = stmt.on_conflict_do_update(index_elements=["key", "bucket"], set_={"hits": table.c.hits + 1})
        stmt = stmt.returning(table.c.key, table.c.hits)
        async with self._db.transaction() as session:
            found = {key: int(hits) for key, hits in (await session.execute(stmt)).all()}
        return {(subject, window): found[f"{subject}:{COUNTED}:{window}"] for subject in subjects for window in WINDOWS}

    async def prune(self) -> None:
        oldest = int(clock.now().timestamp()) - KEPT_S
        async with self._db.transaction() as session:
            await session.execute(delete(RiskCounter).where(RiskCounter.bucket < oldest))
