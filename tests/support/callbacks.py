"""Callback test steps: endpoints on the local receiver, events, and a worker loop that skips the waits."""

from datetime import datetime

import httpx
from sqlalchemy import select
from tests.support.callback_receiver import Receiver

from kaquan.channels.callbacks import sender
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks.models import CallbackAttempt, CallbackDelivery, CallbackEndpoint
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database

# Long enough that a loaded machine never turns a prompt answer into a timeout; tests of timeouts pass their own.
TIMEOUT_S = 5.0


async def given_endpoint(db: Database, keyring: KeyRing, receiver: Receiver, agent_id: int) -> str:
    """Point the agent at `/agents/<id>` on the receiver (loopback allowed, as in tests); returns the secret."""
    path = f"/agents/{agent_id}"
    async with db.transaction() as session:
        secret = await callbacks.set_endpoint(
            db, session, keyring, agent_id=agent_id, url=receiver.url(path), allow_private=True, actor="test"
        )
    receiver.secrets[path] = secret
    return secret


async def notify(db: Database, agent_id: int, count: int = 1, event_type: str = "order.delivered") -> list[str]:
    """Queue `count` events for the agent, each in its own committed transaction."""
    event_ids = []
    for n in range(count):
        async with db.transaction() as session:
            event_id = await callbacks.notify(session, agent_id=agent_id, event_type=event_type, data={"n": n})
        assert event_id is not None
        event_ids.append(event_id)
    return event_ids


async def deliveries(db: Database, **where: object) -> list[CallbackDelivery]:
    async with db.read() as session:
        stmt = select(CallbackDelivery).filter_by(**where).order_by(CallbackDelivery.id)
        return list((await session.execute(stmt)).scalars())


async def endpoint_of(db: Database, agent_id: int) -> CallbackEndpoint:
    async with db.read() as session:
        found = await callbacks.get_endpoint(session, agent_id)
    assert found is not None
    return found


async def next_due(db: Database) -> datetime | None:
    """When the worker could next send something: the earliest pending delivery, past its endpoint's pause."""
    async with db.read() as session:
        rows = await session.execute(
            select(CallbackDelivery.next_attempt_at, CallbackEndpoint.paused_until)
            .join(CallbackEndpoint, CallbackEndpoint.agent_id == CallbackDelivery.agent_id)
            .where(CallbackDelivery.status == "pending")
        )
        due = [max(at, paused) if paused is not None else at for at, paused in rows]
    return min(due, default=None)


async def work(
    db: Database,
    keyring: KeyRing,
    http: httpx.AsyncClient,
    *,
    until: datetime | None = None,
    allow_private: bool = True,
    timeout_s: float = TIMEOUT_S,
    max_passes: int = 2000,
) -> int:
    """Run worker passes, moving the clock to each next due time, until nothing is pending (or `until`).

    Returns how many deliveries were tried.
    """
    tried = 0
    for _ in range(max_passes):
        tried += await sender.deliver_due(db, keyring, client=http, allow_private=allow_private, timeout_s=timeout_s)
        due = await next_due(db)
        if due is None or (until is not None and due > until):
            return tried
        if due > clock.now():
            clock.travel((due - clock.now()).total_seconds())
    raise AssertionError(f"deliveries still pending after {max_passes} passes")


async def attempts_of(db: Database, delivery_id: int) -> list[CallbackAttempt]:
    async with db.read() as session:
        return (await callbacks.delivery_detail(session, delivery_id)).attempts
