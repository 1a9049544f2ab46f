"""A per-process cache of a few catalog facts, each kept at most a couple of seconds.

The sale path reads the same SKU and the same warehouse order for every buyer of a storm; a cache
bounded by `TTL_S` spares those statements while a change made elsewhere (another process, a
direct SQL update) shows within that bound. A change made through this process's services clears
the cache at once (`clear`).

Entries are kept per database (the engine's pool): two databases in one process, as in the tests,
never see each other's rows. What is cached must be a plain value or a detached copy, never an
object of a session.
"""

import time
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
TTL_S = 2.0


class ShortCache(Generic[T]):
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._by_db: weakref.WeakKeyDictionary[Any, dict[Hashable, tuple[float, T]]] = weakref.WeakKeyDictionary()

    def _entries(self, session: AsyncSession) -> dict[Hashable, tuple[float, T]]:
        pool = session.get_bind().engine.pool
        entries = self._by_db.get(pool)
        if entries is None:
            entries = self._by_db[pool] = {}
        return entries

    def get(self, session: AsyncSession, key: Hashable) -> T | None:
        found = self._entries(session).get(key)
        if found is None or time.monotonic() - found[0] > self.ttl_s:
            return None
        return found[1]

    def put(self, session: AsyncSession, key: Hashable, value: T) -> None:
        self._entries(session)[key] = (time.monotonic(), value)

    def clear(self) -> None:
        """Forget everything, for every database: after a write that changes what is cached."""
        self._by_db.clear()
