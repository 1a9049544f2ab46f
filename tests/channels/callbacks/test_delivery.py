"""Delivering callbacks to a real local receiver: every event arrives once, however the receiver misbehaves.

The receiver is a real HTTP server on 127.0.0.1 (see receiver.py); `work` runs
worker passes and moves the clock to the next due time, so hours and days of
backoff pass in moments. Nothing here measures wall-clock time.
"""

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from tests.support.callback_receiver import Answer, Receiver, seeded
from tests.support.callbacks import (
    TIMEOUT_S,
    attempts_of,
    deliveries,
    endpoint_of,
    given_endpoint,
    notify,
    work,
)
from tests.support.races import each_reads_before_any_writes

from kaquan.audit.models import AuditEntry
from kaquan.channels.callbacks import sender
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks.errors import ReplayRefused
from kaquan.channels.callbacks.models import CallbackDelivery
from kaquan.channels.callbacks.signing import InvalidSignature, verify_signature
from kaquan.channels.schemas import rfc3339
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database

AGENTS = (11, 12, 13, 14, 15)


async def deliver(db: Database, keyring: KeyRing, http: httpx.AsyncClient, **options: Any) -> int:
    """One worker pass."""
    options.setdefault("allow_private", True)
    return await sender.deliver_due(db, keyring, client=http, timeout_s=TIMEOUT_S, **options)


def least_backoff(attempts: int) -> timedelta:
    """The shortest wait `sender.backoff` may give after the `attempts`-th failure (all jitter taken off)."""
    longest: timedelta = min(sender.FIRST_BACKOFF * 2 ** (attempts - 1), sender.MAX_BACKOFF)
    return longest * 0.8


def test_backoff_doubles_from_five_seconds_to_an_hour_with_jitter() -> None:
    for attempts in range(1, 40):
        wait = sender.backoff(attempts)
        assert least_backoff(attempts) <= wait <= min(sender.FIRST_BACKOFF * 2 ** (attempts - 1), sender.MAX_BACKOFF)
    assert len({sender.backoff(3) for _ in range(20)}) > 1, "jitter spreads retries of one moment apart"


def test_the_breaker_opens_at_five_failures_and_pauses_longer_each_time_up_to_an_hour() -> None:
    assert [sender.breaker_pause(n) for n in range(5)] == [None] * 5
    pauses = [sender.breaker_pause(n) for n in range(5, 40)]
    assert pauses[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert pauses == sorted(pauses, key=lambda p: p or timedelta())
    assert pauses[-1] == sender.BREAKER_MAX_PAUSE == timedelta(hours=1)


async def test_every_callback_is_delivered_exactly_once_despite_a_receiver_that_fails_at_random(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.answer = seeded(20261125, {"ok": 0.55, "error": 0.2, "timeout": 0.05, "reset": 0.2})
    await receiver.start()
    for agent_id in AGENTS:
        await given_endpoint(db, keyring, receiver, agent_id)
    event_ids = [event_id for agent_id in AGENTS for event_id in await notify(db, agent_id, count=20)]

    tried = await work(db, keyring, http, timeout_s=1.5)

    assert Counter(receiver.accepted) == Counter(event_ids), "each event accepted exactly once"
    assert {request.answer for request in receiver.requests} == {"ok", "error", "timeout", "reset"}
    assert receiver.bad_signatures == []
    assert tried == len(receiver.requests)
    for delivery in await deliveries(db):
        assert delivery.status == "delivered"
        attempts = await attempts_of(db, delivery.id)
        assert delivery.attempts == len(attempts) == len(receiver.requests_for(delivery.event_id))
        assert [a.status_code for a in attempts][-1] == 200
        assert all(a.error is not None for a in attempts if a.status_code is None)


async def test_a_receiver_down_for_hours_gets_every_event_once_it_is_back(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await given_endpoint(db, keyring, receiver, 11)
    event_ids = await notify(db, 11, count=5)
    down_until = clock.now() + timedelta(hours=6)

    await work(db, keyring, http, until=down_until)

    assert receiver.requests == []
    for delivery in await deliveries(db):
        assert delivery.status == "pending"
        attempts = await attempts_of(db, delivery.id)
        assert 2 <= len(attempts) <= 10, "retried, but backing off rather than hammering"
        assert all(a.status_code is None and a.error and "ConnectError" in a.error for a in attempts)
        for number, (earlier, later) in enumerate(pairwise(attempts), start=1):
            assert later.at - earlier.at >= least_backoff(number)
        assert delivery.next_attempt_at - attempts[-1].at >= least_backoff(len(attempts))

    clock.travel((down_until - clock.now()).total_seconds())
    await receiver.start()
    await work(db, keyring, http)

    assert Counter(receiver.accepted) == Counter(event_ids)
    assert {d.status for d in await deliveries(db)} == {"delivered"}
    assert (await endpoint_of(db, 11)).consecutive_failures == 0


async def test_a_receiver_down_past_the_retry_window_leaves_its_deliveries_failed(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await given_endpoint(db, keyring, receiver, 11)
    await notify(db, 11, count=3)
    window_ends = clock.now() + callbacks.RETRY_WINDOW

    await work(db, keyring, http, until=window_ends - timedelta(hours=1))
    assert {d.status for d in await deliveries(db)} == {"pending"}, "still trying after two days and more"

    await work(db, keyring, http)

    assert clock.now() >= window_ends
    for delivery in await deliveries(db):
        assert delivery.status == "failed"
        attempts = await attempts_of(db, delivery.id)
        assert attempts
        assert all(attempt.at <= delivery.give_up_at for attempt in attempts), "no try after the window"
    await receiver.start()
    clock.travel(3600)
    assert await deliver(db, keyring, http) == 0
    assert receiver.requests == []


async def test_a_410_disables_the_endpoint_and_cancels_its_pending_deliveries(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.answer = lambda path: "gone" if path == "/agents/11" else "ok"
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)
    await given_endpoint(db, keyring, receiver, 12)
    await notify(db, 11, count=3)
    [other] = await notify(db, 12)

    assert await deliver(db, keyring, http, limit=1) == 1

    endpoint = await endpoint_of(db, 11)
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "the receiver answered 410 Gone"
    first, *rest = await deliveries(db, agent_id=11)
    assert (first.status, first.attempts, first.last_status_code) == ("cancelled", 1, 410)
    assert [(d.status, d.attempts) for d in rest] == [("cancelled", 0), ("cancelled", 0)]

    await work(db, keyring, http)
    assert receiver.accepted == [other]
    assert len(receiver.requests) == 2, "nothing more went to the endpoint that said it is gone"
    async with db.transaction() as session:
        assert await callbacks.notify(session, agent_id=11, event_type="order.paid", data={}) is None
    with pytest.raises(ReplayRefused, match="410 Gone"):
        async with db.transaction() as session:
            await callbacks.replay(db, session, first.id, actor="alice")

    receiver.answer = lambda path: "ok"
    await given_endpoint(db, keyring, receiver, 11)  # setting the URL again enables it
    [again] = await notify(db, 11)
    await work(db, keyring, http)
    assert receiver.accepted == [other, again]


async def test_the_circuit_breaker_pauses_a_failing_endpoint_and_a_single_probe_resumes_it(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.answer = lambda path: "error"
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)
    event_ids = await notify(db, 11, count=10)

    assert await deliver(db, keyring, http) == 10
    endpoint = await endpoint_of(db, 11)
    first_pause = sender.breaker_pause(10)
    assert endpoint.consecutive_failures == 10
    assert first_pause is not None and endpoint.paused_until is not None
    assert first_pause - timedelta(seconds=5) <= endpoint.paused_until - clock.now() <= first_pause

    clock.travel(60)  # every delivery's own backoff has passed; the endpoint's pause has not
    assert all(d.next_attempt_at <= clock.now() for d in await deliveries(db))
    assert await deliver(db, keyring, http) == 0

    clock.travel((endpoint.paused_until - clock.now()).total_seconds())
    assert await deliver(db, keyring, http) == 1, "half-open: one probe"
    endpoint = await endpoint_of(db, 11)
    longer = sender.breaker_pause(11)
    assert endpoint.consecutive_failures == 11 and longer is not None and longer > first_pause
    assert endpoint.paused_until is not None and endpoint.paused_until - clock.now() > first_pause

    receiver.answer = lambda path: "ok"
    clock.travel((endpoint.paused_until - clock.now()).total_seconds())
    assert await deliver(db, keyring, http) == 1, "half-open again: one probe, which succeeds"
    endpoint = await endpoint_of(db, 11)
    assert (endpoint.consecutive_failures, endpoint.paused_until) == (0, None)
    assert await deliver(db, keyring, http) == 9, "closed: the rest go at once"
    assert Counter(receiver.accepted) == Counter(event_ids)
    assert len(receiver.requests) == 10 + 1 + 1 + 9


@pytest.fixture
def slow_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each lease transaction open a moment after its claim, so two workers' claims overlap."""
    claim = sender._due

    async def claim_then_pause(*args: Any, **kwargs: Any) -> list[CallbackDelivery]:
        claimed = await claim(*args, **kwargs)
        await asyncio.sleep(0.1)
        return claimed

    monkeypatch.setattr(sender, "_due", claim_then_pause)


async def two_workers(db: Database, keyring: KeyRing, http: httpx.AsyncClient) -> tuple[int | BaseException, ...]:
    return await asyncio.gather(deliver(db, keyring, http), deliver(db, keyring, http), return_exceptions=True)


@pytest.mark.usefixtures("slow_claims")
async def test_two_workers_at_once_never_send_one_delivery_twice(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await receiver.start()
    for agent_id in AGENTS[:2]:
        await given_endpoint(db, keyring, receiver, agent_id)
    event_ids = [event_id for agent_id in AGENTS[:2] for event_id in await notify(db, agent_id, count=10)]

    tried = await two_workers(db, keyring, http)

    assert sum(n for n in tried if isinstance(n, int)) == 20
    assert Counter(request.event_id for request in receiver.requests) == Counter(event_ids)
    assert {d.status for d in await deliveries(db)} == {"delivered"}


async def test_without_the_protection_two_workers_do_send_deliveries_twice(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The control experiment: with row locks and IMMEDIATE transactions off, both workers claim the same rows.

    The race is certain: each worker's claim, once read, waits for the other's before its transaction
    leases anything (a rendezvous of the two right after `_due`), so both read the same due rows. Left
    to the scheduler (a pause after the claim), one worker could lease them before the other looked.
    PostgreSQL then sends them twice; SQLite refuses the second lease (its read snapshot is stale), so
    that worker fails instead.
    """
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)
    await notify(db, 11, count=10)

    with db.unprotected(), each_reads_before_any_writes(sender, "_due", contenders=2):
        tried = await two_workers(db, keyring, http)

    sent = Counter(request.event_id for request in receiver.requests)
    sent_twice = any(count > 1 for count in sent.values())
    lost_to_errors = any(isinstance(result, Exception) for result in tried)
    assert sent_twice or lost_to_errors, "the unprotected workers should have raced"


async def test_a_replay_resends_the_same_event_under_the_same_webhook_id(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)
    [event_id] = await notify(db, 11)
    await work(db, keyring, http)
    [delivered] = await deliveries(db)

    clock.travel(3600)
    async with db.transaction() as session:
        replayed = await callbacks.replay(db, session, delivered.id, actor="alice")
        assert (replayed.status, replayed.delivered_at) == ("pending", None)
    await work(db, keyring, http)

    first, second = receiver.requests
    assert first.event_id == second.event_id == event_id
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]) + 3600
    assert receiver.bad_signatures == []
    [again] = await deliveries(db)
    assert (again.status, again.attempts) == ("delivered", 2)
    assert again.give_up_at > delivered.give_up_at, "a replay starts a new retry window"
    async with db.read() as session:
        entry = await session.get(AuditEntry, 2)  # 1: the endpoint was set
    assert entry is not None
    assert (entry.actor, entry.action, entry.target) == (
        "alice",
        "callback_delivery.replayed",
        f"callback_delivery:{again.id}",
    )
    assert entry.before == {"status": "delivered", "attempts": 1}


async def test_the_body_is_the_documented_json_the_same_on_every_try(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    answers: Iterator[Answer] = iter(["error", "ok"])
    receiver.answer = lambda path: next(answers)
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)
    async with db.transaction() as session:
        event_id = await callbacks.notify(
            session, agent_id=11, event_type="order.delivered", data={"order_no": "KQ1", "note": "卡密已发"}
        )

    await work(db, keyring, http)

    first, second = receiver.requests
    [delivery] = await deliveries(db)
    assert first.body == second.body
    assert json.loads(first.body) == {
        "id": event_id,
        "type": "order.delivered",
        "timestamp": rfc3339(delivery.created_at),
        "data": {"order_no": "KQ1", "note": "卡密已发"},
    }
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-id"] == event_id
    assert first.headers["user-agent"] == sender.USER_AGENT


async def test_a_rotated_secret_signs_alongside_the_new_one_until_its_grace_period_ends(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await receiver.start()
    old = await given_endpoint(db, keyring, receiver, 11)
    new = await given_endpoint(db, keyring, receiver, 11)

    await notify(db, 11)
    await work(db, keyring, http)
    clock.travel(callbacks.SECRET_GRACE.total_seconds() + 1)
    await notify(db, 11)
    await work(db, keyring, http)

    during, after = receiver.requests
    assert len(during.headers["webhook-signature"].split()) == 2
    verify_signature(old, during.headers, during.body, now=during.at)
    verify_signature(new, during.headers, during.body, now=during.at)
    assert len(after.headers["webhook-signature"].split()) == 1
    verify_signature(new, after.headers, after.body, now=after.at)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify_signature(old, after.headers, after.body, now=after.at)


async def test_a_host_that_now_resolves_inward_is_refused_at_send_time(
    db: Database, keyring: KeyRing, http: httpx.AsyncClient, receiver: Receiver, fake_dns: dict[str, list[str]]
) -> None:
    fake_dns["hooks.example.test"] = ["93.184.216.34"]
    async with db.transaction() as session:
        secret = await callbacks.set_endpoint(
            db,
            session,
            keyring,
            agent_id=11,
            url=receiver.url("/agents/11", host="hooks.example.test"),
            allow_private=False,
            actor="alice",
        )
    receiver.secrets["/agents/11"] = secret
    await receiver.start()
    await notify(db, 11)
    fake_dns["hooks.example.test"] = ["127.0.0.1"]  # the DNS answer changed after the URL was checked

    assert await deliver(db, keyring, http, allow_private=False) == 1

    assert receiver.requests == []
    [delivery] = await deliveries(db)
    [attempt] = await attempts_of(db, delivery.id)
    assert delivery.status == "pending"
    assert attempt.error == (
        "callback URL refused: hooks.example.test resolves to a non-public address: 127.0.0.1 (loopback)"
    )

    clock.travel(60)
    assert await deliver(db, keyring, http, allow_private=True) == 1  # the operator allows private addresses
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}", "sent to the checked address, by name"
    assert receiver.bad_signatures == []


async def test_the_worker_step_sends_what_is_due_and_then_has_nothing_to_do(
    db: Database, keyring: KeyRing, receiver: Receiver
) -> None:
    await receiver.start()
    await given_endpoint(db, keyring, receiver, 11)

    assert await sender.run_due(db, keyring, allow_private=True) == 0
    [event_id] = await notify(db, 11)
    assert await sender.run_due(db, keyring, allow_private=True) == 1
    assert receiver.accepted == [event_id]
    assert await sender.run_due(db, keyring, allow_private=True) == 0
