"""Transactional outbox: effects written in the same transaction as the change, run later by the worker.

A module enqueues an event with `enqueue(session, topic, payload)` inside its
transaction; if that transaction rolls back, the event never existed. The worker
claims due events (`SKIP LOCKED` on PostgreSQL), runs the registered handler in
a transaction of its own and marks the event done in that same transaction, so
an event's effects and its completion commit together. Failures back off
exponentially and are retried for days.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.kit.models import Base, BigId, UTCDateTime

log = logging.getLogger(__name__)

Handler = Callable[[Database, AsyncSession, dict[str, Any]], Awaitable[None]]
_handlers: dict[str, Handler] = {}
MAX_BACKOFF = timedelta(hours=6)
GIVE_UP_AFTER = 30  # attempts: ~4 days of exponential backoff capped at 6 h


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at = mapped_column(UTCDateTime(), nullable=False)
    due_at = mapped_column(UTCDateTime(), nullable=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    done_at = mapped_column(UTCDateTime(), nullable=True)
    failed_at = mapped_column(UTCDateTime(), nullable=True)


def handler(topic: str) -> Callable[[Handler], Handler]:
    """Register the function that runs events of `topic` (one handler per topic)."""

    def register(fn: Handler) -> Handler:
        if topic in _handlers and _handlers[topic] is not fn:
            raise RuntimeError(f"two handlers for outbox topic {topic!r}")
        _handlers[topic] = fn
        return fn

    return register


async def enqueue(session: AsyncSession, topic: str, payload: dict[str, Any]) -> None:
    at = clock.now()
    session.add(OutboxEvent(topic=topic, payload=payload, created_at=at, due_at=at, attempts=0))


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2**attempts), MAX_BACKOFF)


async def run_due(db: Database, *, limit: int = 50) -> int:
    """Run up to `limit` due events, one transaction each; returns how many ran successfully."""
    async with db.read() as session:
        ids = (
            (
                await session.execute(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
                    .where(OutboxEvent.due_at <= clock.now())
                    .order_by(OutboxEvent.due_at, OutboxEvent.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    done = 0
    for event_id in ids:
        done += await _run_one(db, event_id)
    return done


async def _run_one(db: Database, event_id: int) -> int:
    try:
        async with db.transaction() as session:
            event = (
                await session.execute(
                    # Re-checked under the lock: a concurrent runner may have failed it (not due any more).
                    db.claim(
                        select(OutboxEvent).where(
                            OutboxEvent.id == event_id,
                            OutboxEvent.done_at.is_(None),
                            OutboxEvent.failed_at.is_(None),
                            OutboxEvent.due_at <= clock.now(),
                        )
                    )
                )
            ).scalar_one_or_none()
            if event is None:
                return 0
            try:
                # A savepoint undoes a failed handler's effects while we keep the claim, so the
                # failure is recorded before any concurrent runner can see the event as due again.
                async with session.begin_nested():
                    run = _handlers.get(event.topic)
                    if run is None:
                        raise LookupError(f"no handler registered for topic {event.topic!r}")
                    await run(db, session, event.payload)
            except Exception as exc:
                log.warning("outbox event %s failed: %s", event_id, type(exc).__name__)
                await session.refresh(event)
                _note_failure(event, exc)
                return 0
            event.done_at = clock.now()
            event.attempts += 1
            return 1
    except Exception as exc:
        log.warning("outbox event %s failed: %s", event_id, type(exc).__name__)
        try:
            await _record_failure(db, event_id, exc)
        except Busy:
            # The event stays due and is tried again; one busy event must not stop the runner.
            log.warning("outbox event %s: failure not recorded, the database is busy", event_id)
        return 0


async def _record_failure(db: Database, event_id: int, exc: Exception) -> None:
    async with db.transaction() as session:
        event = await session.get(OutboxEvent, event_id)
        if event is None or event.done_at is not None:
            return
        _note_failure(event, exc)


def _note_failure(event: OutboxEvent, exc: Exception) -> None:
    event.attempts += 1
    event.last_error = f"{type(exc).__name__}: {exc}"[:500]
    event.due_at = clock.now() + backoff(event.attempts)
    if event.attempts >= GIVE_UP_AFTER:
        event.failed_at = clock.now()


async def pending_payloads(session: AsyncSession, topic: str) -> list[dict[str, Any]]:
    """The payloads of `topic`'s events still to run (due or backing off; not done, not given up)."""
    stmt = (
        select(OutboxEvent.payload)
        .where(OutboxEvent.topic == topic, OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
        .order_by(OutboxEvent.id)
    )
    return list((await session.execute(stmt)).scalars())


async def pending_count(session: AsyncSession) -> int:
    stmt = select(func.count()).where(OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


@dataclass(frozen=True)
class Backlog:
    """Events still to run, those that gave up, and how long the oldest waiting one has waited."""

    pending: int
    given_up: int
    oldest_age_s: float


async def backlog(session: AsyncSession) -> Backlog:
    waiting = (OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
    pending, oldest = (
        await session.execute(select(func.count(), func.min(OutboxEvent.created_at)).where(*waiting))
    ).one()
    given_up = await session.scalar(select(func.count()).where(OutboxEvent.failed_at.is_not(None)))
    age = (clock.now() - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(int(pending), int(given_up or 0), max(age, 0.0))


async def mark_all_due(session: AsyncSession) -> None:
    """Make every waiting event due now (the admin 'retry now' button and tests)."""
    await session.execute(update(OutboxEvent).where(OutboxEvent.done_at.is_(None)).values(due_at=clock.now()))
