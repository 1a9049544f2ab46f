"""A PostgreSQL streaming replica that reads may go to while it is close enough behind the primary."""

import asyncio
import logging
import math
import time

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)


class Replica:
    """A PostgreSQL streaming replica, trusted for reads while it is at most `max_lag_s` behind the primary.

    The lag is measured at most every `max_lag_s / 2` seconds and the replica used only while the last
    measure was within `max_lag_s / 2`, so a read there is never more than `max_lag_s` behind. One
    measure: the primary's WAL position first, then the replica's replay position; a replica that has
    replayed past it is current, else it is as far behind as its last replayed commit is old. A replica
    that does not answer, stopped streaming or was promoted (no longer in recovery) is not used.
    `url` is the driver URL (`kit.db.async_url`), which `kit.db` has checked names PostgreSQL.
    """

    def __init__(self, url: str, primary: AsyncEngine, *, max_lag_s: float, pool_size: int = 5) -> None:
        self.engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, connect_args={"timeout": _REPLICA_CONNECT_S}
        )
        self.max_lag_s = max_lag_s
        self._primary = primary
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._checked_at = -math.inf
        self._fresh = False
        self._checking = asyncio.Lock()

    async def fresh(self) -> bool:
        """Whether reads may go to the replica now (measuring again when the last measure is too old)."""
        if time.monotonic() - self._checked_at < self.max_lag_s / 2:
            return self._fresh
        async with self._checking:
            if time.monotonic() - self._checked_at >= self.max_lag_s / 2:
                lag = await self.lag_s()
                self._fresh = lag is not None and lag <= self.max_lag_s / 2
                self._checked_at = time.monotonic()
        return self._fresh

    async def lag_s(self) -> float | None:
        """How far the replica is behind the primary now, in seconds; None when it cannot serve reads."""
        try:
            async with asyncio.timeout(_REPLICA_CONNECT_S):
                async with self._primary.connect() as primary:
                    position = (await primary.execute(text("SELECT pg_current_wal_lsn()"))).scalar_one()
                async with self.engine.connect() as replica:
                    row = (await replica.execute(_REPLICA_LAG, {"position": position})).one()
        except (OSError, TimeoutError, DBAPIError) as exc:
            log.warning("read replica unusable, reading the primary: %s", type(exc).__name__)
            return None
        recovering, streaming, caught_up, behind_s = row
        if not recovering or not streaming:
            log.warning("read replica %s, reading the primary", "promoted" if not recovering else "not streaming")
            return None
        return 0.0 if caught_up else (float(behind_s) if behind_s is not None else None)

    async def dispose(self) -> None:
        await self.engine.dispose()


_REPLICA_CONNECT_S = 2.0
_REPLICA_LAG = text(
    "SELECT pg_is_in_recovery(),"
    " EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),"
    " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:position AS pg_lsn)) >= 0,"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
)
