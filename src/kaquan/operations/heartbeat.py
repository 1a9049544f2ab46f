"""A worker says it is alive; a probe asks when it last did."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.operations.models import WorkerHeartbeat

WORKER = "worker"


async def beat(db: Database, name: str = WORKER) -> None:
    """Stamp `name`'s heartbeat with now: an update of one row, its insert the first time."""
    now = clock.now()
    async with db.transaction() as session:
        stamped = await session.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.name == name).values(beat_at=now))
        if not stamped.rowcount:  # type: ignore[attr-defined]
            session.add(WorkerHeartbeat(name=name, beat_at=now))


async def last_beat(session: AsyncSession, name: str = WORKER) -> datetime | None:
    return await session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == name))
