"""The decision log: every decision becomes a `risk_decisions` row, written behind the request.

The decision path appends to a buffer and returns; one task per process drains the buffer in batches,
so a burst of a thousand decisions costs a few inserts, not a thousand round trips. A decision is
lost only if the process dies within the moment before its batch commits; the buffer is bounded, and
when the database cannot keep up the oldest unwritten rows are dropped (and counted in the log) rather
than letting memory grow. The same task prunes old counters and spent nonces every few minutes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.risk.models import RiskDecision

log = logging.getLogger(__name__)
BATCH = 1000
MAX_PENDING = 50_000
PRUNE_EVERY_S = 600.0


class DecisionLog:
    def __init__(self, db: Database, *, prune: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self._db = db
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._prune = prune
        self._pruned_at: float | None = None
        self.dropped = 0

    def add(self, row: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("risk decision log is behind: %d decisions not recorded so far", self.dropped)
        self._pending.append(row)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            try:
                async with self._db.transaction() as session:
                    await session.execute(insert(RiskDecision.__table__), batch)  # type: ignore[arg-type]  # executemany
            except Exception:  # the log must never fail a request: say so and go on
                log.exception("could not record %d risk decisions", len(batch))
            if not self._pending:  # rows added while pruning are drained by the loop's next turn
                await self._maybe_prune()

    async def _maybe_prune(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for prune in self._prune:
            try:
                await prune()
            except Exception:
                log.exception("could not prune risk counters or nonces")

    async def flush(self) -> None:
        """Wait until every decision made so far is written (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await self._task


async def recent(
    session: AsyncSession, *, outcome: str | None = None, subject: str | None = None, limit: int = 100
) -> list[RiskDecision]:
    """The latest recorded decisions, newest first, by outcome or subject key if given."""
    stmt = select(RiskDecision).order_by(RiskDecision.id.desc()).limit(limit)
    if outcome is not None:
        stmt = stmt.where(RiskDecision.outcome == outcome)
    if subject is not None:
        stmt = stmt.where(RiskDecision.subject == subject)
    return list((await session.execute(stmt)).scalars())
