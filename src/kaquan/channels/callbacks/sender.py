"""Sending due callbacks: lease in a short transaction, POST outside any transaction, record in another.

No transaction is open while a request is in flight (SQLite has one writer; a
slow receiver must not hold it). The lease (`lease_until`, taken with SKIP LOCKED
on PostgreSQL and under BEGIN IMMEDIATE on SQLite) keeps two workers from sending
one delivery at the same time; a crashed worker's leases simply run out.

Each try writes an attempt row. 2xx: delivered. 410: the endpoint is disabled
and its pending deliveries cancelled. Anything else (another status, a timeout,
a connection error, a URL refused at send time): the delivery waits `backoff`
and tries again until its retry window closes, the last try at the window's end.
Consecutive failures of one endpoint open its circuit breaker (`paused_until`);
when the pause ends one delivery probes the receiver: a success closes the
breaker, a failure pauses it again, longer. A delivery tried before whose window
closes while the breaker is open fails without another try.
"""

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.callbacks import signing, ssrf
from kaquan.channels.callbacks.errors import CallbackUrlRefused
from kaquan.channels.callbacks.models import CallbackAttempt, CallbackDelivery, CallbackEndpoint
from kaquan.channels.callbacks.service import cancel_pending, sealed_for, secret_box
from kaquan.channels.schemas import rfc3339
from kaquan.kit import alerts, clock
from kaquan.kit.crypto import KeyRing, SecretBox
from kaquan.kit.db import Database

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
CONCURRENCY = 8
FIRST_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(hours=1)
BREAKER_THRESHOLD = 5
BREAKER_FIRST_PAUSE = timedelta(seconds=30)
BREAKER_MAX_PAUSE = timedelta(hours=1)
USER_AGENT = "kaquan-webhooks/1"
_jitter = random.SystemRandom()


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 5 s doubling up to 1 h, less up to 20 % jitter."""
    base: timedelta = min(FIRST_BACKOFF * 2 ** min(attempts - 1, 20), MAX_BACKOFF)
    return base * _jitter.uniform(0.8, 1.0)


def breaker_pause(consecutive_failures: int) -> timedelta | None:
    """How long an endpoint rests after this many failures in a row: none below the threshold, then 30 s doubling."""
    if consecutive_failures < BREAKER_THRESHOLD:
        return None
    pause: timedelta = BREAKER_FIRST_PAUSE * 2 ** min(consecutive_failures - BREAKER_THRESHOLD, 20)
    return min(pause, BREAKER_MAX_PAUSE)


def body_of(delivery: CallbackDelivery) -> bytes:
    """The JSON body, the same bytes on every try: `{"id", "type", "timestamp", "data"}`."""
    created: datetime = delivery.created_at
    document = {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "timestamp": rfc3339(created),
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    event_id: str
    agent_id: int
    url: str
    body: bytes
    secrets: tuple[str, ...]
    lease_until: datetime


@dataclass(frozen=True)
class _Outcome:
    at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def run_due(db: Database, keyring: KeyRing, *, allow_private: bool, limit: int = 50) -> int:
    """The worker's step: `deliver_due` with an HTTP client opened only when something is due."""
    async with db.read() as session:
        if not (await session.execute(select(exists().where(*_due_now(clock.now()))))).scalar_one():
            return 0
    async with httpx.AsyncClient() as client:
        return await deliver_due(db, keyring, client=client, allow_private=allow_private, limit=limit)


async def deliver_due(
    db: Database,
    keyring: KeyRing,
    *,
    client: httpx.AsyncClient,
    allow_private: bool,
    limit: int = 50,
    timeout_s: float = SEND_TIMEOUT_S,
) -> int:
    """Send up to `limit` due deliveries, `CONCURRENCY` at a time; returns how many were tried."""
    jobs = await _lease(db, keyring, limit=limit, timeout_s=timeout_s)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(job: _Job) -> None:
        async with gate:
            outcome = await _send(client, job, allow_private=allow_private, timeout_s=timeout_s)
        await _record(db, job, outcome)

    results = await asyncio.gather(*(run(job) for job in jobs), return_exceptions=True)
    failed = [result for result in results if isinstance(result, Exception)]
    if failed:
        # The other outcomes are recorded; the failed ones' leases run out and they are tried again.
        raise failed[0]
    return len(jobs)


def _due_now(now: datetime) -> list[ColumnElement[bool]]:
    live = select(CallbackEndpoint.agent_id).where(
        CallbackEndpoint.disabled_at.is_(None),
        or_(CallbackEndpoint.paused_until.is_(None), CallbackEndpoint.paused_until <= now),
    )
    return [
        CallbackDelivery.status == "pending",
        CallbackDelivery.next_attempt_at <= now,
        or_(CallbackDelivery.lease_until.is_(None), CallbackDelivery.lease_until <= now),
        CallbackDelivery.agent_id.in_(live),
    ]


async def _due(db: Database, session: AsyncSession, now: datetime, limit: int) -> list[CallbackDelivery]:
    """Claim due deliveries of live endpoints, oldest due first (rows another worker holds are skipped)."""
    stmt = select(CallbackDelivery).where(*_due_now(now))
    stmt = stmt.order_by(CallbackDelivery.next_attempt_at, CallbackDelivery.id).limit(limit)
    return list((await session.execute(db.claim(stmt))).scalars())


async def _lease(db: Database, keyring: KeyRing, *, limit: int, timeout_s: float) -> list[_Job]:
    now = clock.now()
    rounds = -(-limit // CONCURRENCY) + 1
    lease_until = now + timedelta(seconds=timeout_s * rounds + 60)
    async with db.transaction() as session:
        candidates = await _due(db, session, now, limit)
        agents = {delivery.agent_id for delivery in candidates}
        endpoints = {
            endpoint.agent_id: endpoint
            for endpoint in (
                await session.execute(select(CallbackEndpoint).where(CallbackEndpoint.agent_id.in_(agents)))
            ).scalars()
        }
        chosen: list[CallbackDelivery] = []
        probing: set[int] = set()
        for delivery in candidates:
            endpoint = endpoints.get(delivery.agent_id)
            if endpoint is None or endpoint.disabled_at is not None:
                continue
            if endpoint.consecutive_failures >= BREAKER_THRESHOLD:
                # Half-open: one probe at a time, the endpoint held back until its outcome is known;
                # a delivery whose window closed meanwhile is not a probe (`_give_up_held_back` fails it).
                if endpoint.agent_id in probing or _window_closed(delivery, now):
                    continue
                probing.add(endpoint.agent_id)
                endpoint.paused_until = lease_until
            chosen.append(delivery)
        await _give_up_held_back(session, now)
        if not chosen:
            return []
        await session.execute(
            update(CallbackDelivery)
            .where(CallbackDelivery.id.in_([delivery.id for delivery in chosen]))
            .values(lease_until=lease_until)
        )
        box = await secret_box(db, session, keyring)
        return [_job(delivery, endpoints[delivery.agent_id], box, lease_until, now) for delivery in chosen]


def _window_closed(delivery: CallbackDelivery, now: datetime) -> bool:
    closes: datetime = delivery.give_up_at
    return delivery.attempts >= 1 and closes <= now


async def _give_up_held_back(session: AsyncSession, now: datetime) -> None:
    """Fail tried deliveries whose window closed while their endpoint's circuit breaker was open."""
    tripped = select(CallbackEndpoint.agent_id).where(CallbackEndpoint.consecutive_failures >= BREAKER_THRESHOLD)
    await session.execute(
        update(CallbackDelivery)
        .where(
            CallbackDelivery.status == "pending",
            CallbackDelivery.give_up_at <= now,
            CallbackDelivery.attempts >= 1,
            or_(CallbackDelivery.lease_until.is_(None), CallbackDelivery.lease_until <= now),
            CallbackDelivery.agent_id.in_(tripped),
        )
        .values(status="failed", lease_until=None)
    )


def _job(
    delivery: CallbackDelivery, endpoint: CallbackEndpoint, box: SecretBox, lease_until: datetime, now: datetime
) -> _Job:
    bound = sealed_for(endpoint.agent_id)
    secrets = [box.open(endpoint.secret_sealed, bound)]
    previous_until: datetime | None = endpoint.previous_valid_until
    if endpoint.previous_sealed is not None and previous_until is not None and previous_until > now:
        secrets.append(box.open(endpoint.previous_sealed, bound))
    return _Job(
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        agent_id=delivery.agent_id,
        url=endpoint.url,
        body=body_of(delivery),
        secrets=tuple(secrets),
        lease_until=lease_until,
    )


async def _send(client: httpx.AsyncClient, job: _Job, *, allow_private: bool, timeout_s: float) -> _Outcome:
    at = clock.now()
    started = time.perf_counter()

    def took() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        async with asyncio.timeout(timeout_s):
            target = await ssrf.check(job.url, allow_private=allow_private)
            status_code = await _post(client, job, target, timeout_s=timeout_s)
    except CallbackUrlRefused as exc:
        return _Outcome(at, took(), error=exc.message)
    except (TimeoutError, httpx.TimeoutException):
        return _Outcome(at, took(), error=f"no answer within {timeout_s:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return _Outcome(at, took(), error=f"{type(exc).__name__}: {exc}"[:500])
    return _Outcome(at, took(), status_code=status_code)


async def _post(client: httpx.AsyncClient, job: _Job, target: ssrf.Target, *, timeout_s: float) -> int:
    """POST to the first checked address that accepts a connection; returns the status code (the body is unread)."""
    timestamp = int(clock.now().timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.signed_headers(job.secrets, job.event_id, timestamp, job.body),
    }
    *others, last = target.addresses
    for address in others:
        try:
            return await _post_to(client, job, target.pinned(address), headers, timeout_s)
        except httpx.ConnectError:
            continue
    return await _post_to(client, job, target.pinned(last), headers, timeout_s)


async def _post_to(
    client: httpx.AsyncClient, job: _Job, pinned: ssrf.Pinned, headers: dict[str, str], timeout_s: float
) -> int:
    async with client.stream(
        "POST",
        pinned.url,
        content=job.body,
        headers={**headers, **pinned.headers},
        extensions=pinned.extensions,
        follow_redirects=False,
        timeout=timeout_s,
    ) as response:
        return response.status_code


async def _record(db: Database, job: _Job, outcome: _Outcome) -> None:
    """Write the attempt and its consequences for the delivery and its endpoint."""
    now = clock.now()
    this = CallbackDelivery.id == job.delivery_id
    async with db.transaction() as session:
        if outcome.status_code == 410:
            # The agent's pending deliveries, in id order, before any other write: two 410s at once for one
            # agent would otherwise each hold its own delivery and wait for the other's in `_disable`.
            agents_pending = and_(CallbackDelivery.agent_id == job.agent_id, CallbackDelivery.status == "pending")
            await session.execute(
                db.lock(select(CallbackDelivery.id).where(or_(this, agents_pending)).order_by(CallbackDelivery.id))
            )
        session.add(
            CallbackAttempt(
                delivery_id=job.delivery_id,
                at=outcome.at,
                url=job.url,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        await session.execute(
            update(CallbackDelivery)
            .where(this)
            .values(attempts=CallbackDelivery.attempts + 1, last_status_code=outcome.status_code)
        )
        its_endpoint = update(CallbackEndpoint).where(CallbackEndpoint.agent_id == job.agent_id)
        if outcome.delivered:
            # The receiver has it: that is the truth whatever else happened to the row meanwhile.
            await session.execute(
                update(CallbackDelivery)
                .where(this, CallbackDelivery.status != "delivered")
                .values(status="delivered", delivered_at=now, lease_until=None)
            )
            await session.execute(its_endpoint.values(consecutive_failures=0, paused_until=None))
            return
        if outcome.status_code == 410:
            await _disable(db, session, job.agent_id, now)
            return
        ours = and_(this, CallbackDelivery.status == "pending", CallbackDelivery.lease_until == job.lease_until)
        delivery = (await session.execute(db.lock(select(CallbackDelivery).where(ours)))).scalar_one_or_none()
        if delivery is not None:
            delivery.lease_until = None
            if now >= delivery.give_up_at:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = min(now + backoff(delivery.attempts), delivery.give_up_at)
        failures = (
            await session.execute(
                its_endpoint.values(consecutive_failures=CallbackEndpoint.consecutive_failures + 1).returning(
                    CallbackEndpoint.consecutive_failures
                )
            )
        ).scalar_one_or_none()
        pause = breaker_pause(failures or 0)
        if pause is not None:
            await session.execute(its_endpoint.values(paused_until=now + pause))
    log.info("callback delivery %s failed: %s", job.delivery_id, outcome.error or f"HTTP {outcome.status_code}")


async def _disable(db: Database, session: AsyncSession, agent_id: int, now: datetime) -> None:
    # Deliveries before their endpoint, the order every callbacks transaction locks in (no deadlocks).
    cancelled = await cancel_pending(session, agent_id)
    await session.execute(
        update(CallbackEndpoint)
        .where(CallbackEndpoint.agent_id == agent_id, CallbackEndpoint.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason="the receiver answered 410 Gone", updated_at=now)
    )
    log.warning(
        "agent %s's callback endpoint answered 410 Gone: disabled, %s deliveries cancelled", agent_id, cancelled
    )
    facts = {"agent_id": agent_id, "cancelled": cancelled}
    await alerts.raise_alert(db, session, "callback_disabled", f"agent:{agent_id}", facts)
