"""The transactional outbox: an event exists only if its transaction committed, and runs once, eventually."""

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.races import Rendezvous, meeting

from kaquan.kit import clock, outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy
from kaquan.kit.outbox import OutboxEvent


@dataclass
class Script:
    """A handler registered under a topic of its own: fails `failures` times, then succeeds."""

    failures: int = 0
    pause_s: float = 0.0
    rendezvous: Rendezvous | None = None  # met first thing: right after the runner's claim, before it writes
    calls: list[int] = field(default_factory=list)
    topic: str = field(default_factory=lambda: f"test.{secrets.token_hex(6)}")

    def __post_init__(self) -> None:
        outbox.handler(self.topic)(self.run)

    async def run(self, db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
        if self.rendezvous is not None:
            await self.rendezvous.wait()
        self.calls.append(payload["n"])
        # An effect in the handler's transaction: it must vanish when the handler fails.
        await outbox.enqueue(session, f"{self.topic}.effect", {"n": payload["n"]})
        if self.pause_s:
            await asyncio.sleep(self.pause_s)
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"boom {len(self.calls)}")


async def enqueue(db: Database, topic: str, count: int = 1) -> None:
    async with db.transaction() as session:
        for n in range(count):
            await outbox.enqueue(session, topic, {"n": n})


async def events(db: Database, topic: str) -> list[OutboxEvent]:
    async with db.read() as session:
        stmt = select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        return list((await session.execute(stmt)).scalars())


async def the_event(db: Database, topic: str) -> OutboxEvent:
    found = await events(db, topic)
    assert len(found) == 1, found
    return found[0]


async def run_due_timed(db: Database) -> tuple[int, datetime, datetime]:
    """run_due, with the clock readings just before and after it."""
    before = clock.now()
    done = await outbox.run_due(db)
    return done, before, clock.now()


async def test_an_event_enqueued_in_a_rolled_back_transaction_never_exists(db: Database) -> None:
    script = Script()

    with pytest.raises(LookupError):
        async with db.transaction() as session:
            await outbox.enqueue(session, script.topic, {"n": 1})
            raise LookupError("the surrounding change failed")
    await enqueue(db, script.topic)  # the control: a committed event exists and runs

    assert [event.payload for event in await events(db, script.topic)] == [{"n": 0}]
    assert await outbox.run_due(db) == 1
    assert script.calls == [0]


async def test_a_failing_handler_backs_off_exponentially_and_a_later_success_marks_it_done(db: Database) -> None:
    script = Script(failures=3)
    await enqueue(db, script.topic)

    for attempt, delay_s in enumerate((2, 4, 8), start=1):
        done, before, after = await run_due_timed(db)
        assert done == 0
        event = await the_event(db, script.topic)
        assert event.attempts == attempt
        assert event.last_error == f"RuntimeError: boom {attempt}"
        assert before + timedelta(seconds=delay_s) <= event.due_at <= after + timedelta(seconds=delay_s)
        assert event.done_at is None and event.failed_at is None
        assert await events(db, f"{script.topic}.effect") == [], "a failed handler's effects roll back"

        assert await outbox.run_due(db) == 0, "not retried before its time"
        assert len(script.calls) == attempt
        clock.travel(delay_s)

    assert await outbox.run_due(db) == 1

    event = await the_event(db, script.topic)
    assert event.done_at is not None
    assert event.attempts == 4
    assert event.last_error == "RuntimeError: boom 3"
    assert len(await events(db, f"{script.topic}.effect")) == 1
    clock.travel(3600)
    await outbox.run_due(db)
    assert len(script.calls) == 4, "a done event never runs again"


async def test_backoff_is_capped_and_the_outbox_gives_up_after_days_of_failures(db: Database) -> None:
    script = Script(failures=10**6)
    await enqueue(db, script.topic)

    for _ in range(outbox.GIVE_UP_AFTER):
        clock.travel(outbox.MAX_BACKOFF.total_seconds())
        await outbox.run_due(db)

    event = await the_event(db, script.topic)
    assert event.attempts == outbox.GIVE_UP_AFTER
    assert event.failed_at is not None and event.done_at is None
    assert outbox.backoff(outbox.GIVE_UP_AFTER) == outbox.MAX_BACKOFF == timedelta(hours=6)
    clock.travel(outbox.MAX_BACKOFF.total_seconds())
    await outbox.run_due(db)
    assert len(script.calls) == outbox.GIVE_UP_AFTER


async def test_an_unknown_topic_is_a_failure_not_a_crash(db: Database) -> None:
    script = Script()
    unknown = f"nobody.listens.{secrets.token_hex(4)}"
    await enqueue(db, unknown)
    await enqueue(db, script.topic)

    assert await outbox.run_due(db) == 1

    assert script.calls == [0], "the other events still run"
    event = await the_event(db, unknown)
    assert event.attempts == 1
    assert event.done_at is None
    assert event.last_error is not None and unknown in event.last_error
    assert event.due_at > clock.now()


EVENTS = 20


async def test_two_concurrent_runners_handle_each_event_once(db: Database) -> None:
    script = Script(pause_s=0.01)
    await enqueue(db, script.topic, EVENTS)

    done = await asyncio.gather(outbox.run_due(db), outbox.run_due(db))

    assert sum(done) == EVENTS
    assert sorted(script.calls) == list(range(EVENTS))
    assert all(event.done_at is not None for event in await events(db, script.topic))
    assert len(await events(db, f"{script.topic}.effect")) == EVENTS


async def test_without_the_protection_two_runners_do_handle_events_twice(db: Database) -> None:
    """The control experiment: with row locks and IMMEDIATE transactions off, both runners take the same event.

    The race is certain: each runner's handler first waits for the other's (a rendezvous of the two, met
    once for every event). The handler runs right after the claim's read, and nothing of its transaction
    is written before it returns, so both runners have claimed each event before either marks it done.
    Left to the scheduler (a pause in the handler), the runners could take the events one after the other.
    PostgreSQL then marks each event done twice; on SQLite the second runner's write fails (its read
    snapshot is stale) after its handler ran, and the event stays done once.
    """
    with meeting(2) as both_claimed:
        script = Script(rendezvous=both_claimed)
        await enqueue(db, script.topic, EVENTS)
        with db.unprotected():
            await asyncio.gather(outbox.run_due(db), outbox.run_due(db))

    assert sorted(script.calls) == sorted([*range(EVENTS)] * 2), "both runners should have handled every event"


async def test_a_runner_that_finds_the_database_busy_leaves_the_events_due_and_carries_on(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock timeout on the claim, and again on recording the failure, is no reason for the runner to stop."""
    script = Script()
    await enqueue(db, script.topic, EVENTS)

    def busy(*args: object, **kwargs: object) -> None:
        raise Busy("the database is busy; try again shortly")

    with monkeypatch.context() as patched:
        patched.setattr(db, "claim", busy)
        patched.setattr(outbox, "_record_failure", busy)
        assert await outbox.run_due(db) == 0

    assert script.calls == []
    assert await outbox.run_due(db) == EVENTS
    assert sorted(script.calls) == list(range(EVENTS))


async def test_a_failed_event_waits_out_its_backoff_even_when_a_concurrent_runner_saw_it_due(db: Database) -> None:
    script = Script(failures=10**6, pause_s=0.01)
    await enqueue(db, script.topic, EVENTS)

    await asyncio.gather(outbox.run_due(db), outbox.run_due(db))

    assert sorted(script.calls) == list(range(EVENTS))
    assert {event.attempts for event in await events(db, script.topic)} == {1}
