"""Flash-sale test helpers and fixtures: an event in few words, a FlashSale on a gate of each kind, buyers.

The fixtures `gate` (in process; Redis when KAQUAN_TEST_REDIS_URL is set) and `flash` (the runtime's
FlashSale on that gate) reach the tests through the conftest.py of the folders that use them.
"""

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy import func, select
from tests.support.builders import GivenSku

from kaquan.flashsale import committer, service
from kaquan.flashsale.answers import Answer
from kaquan.flashsale.gate import Gate, MemoryGate, RedisGate
from kaquan.flashsale.models import holder_of
from kaquan.flashsale.purchase import FlashSale
from kaquan.flashsale.schemas import EventCreate
from kaquan.inventory.models import Code
from kaquan.kit import clock
from kaquan.kit.errors import DomainError
from kaquan.runtime import Runtime

# Tests wait for every answer, in a storm too (no timing in assertions), and reconcile only when they say so.
TEST_SETTINGS: dict[str, Any] = {"flash_wait_s": 60.0, "flash_wait_queue_max": 1_000_000, "flash_reconcile_s": 3600.0}


def redis_client() -> Redis:
    """A client whose callers wait for a free connection in a burst (the default pool refuses past 100)."""
    url = os.environ["KAQUAN_TEST_REDIS_URL"]
    return Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=32, timeout=30))


@pytest.fixture
async def gate(redis_or_none: Redis | None) -> AsyncIterator[Gate]:
    """A MemoryGate, or a RedisGate under key names of this test's own (never a shared FLUSHALL)."""
    if redis_or_none is None:
        yield MemoryGate()
        return
    prefix = f"kqtest-{secrets.token_hex(4)}:"  # outside kaquan:*, which other test runs flush
    client = redis_client()
    yield RedisGate(client, prefix=prefix)
    keys = [key async for key in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def flash(rt: Runtime, gate: Gate) -> AsyncIterator[FlashSale]:
    """The runtime's FlashSale, on the gate under test."""
    sale = new_flash(rt, gate)
    rt.flash = sale
    yield sale
    await sale.close()


async def given_event(
    rt: Runtime,
    sku: GivenSku,
    *,
    stock: int,
    limit: int = 1,
    price_minor: int = 990,
    starts_in_s: float = 0,
    lasts_s: float = 3600,
    channel: str | None = None,
    verified: bool | None = None,
    per_ip_limit: int | None = None,
    per_device_limit: int | None = None,
) -> int:
    starts_at = clock.now() + timedelta(seconds=starts_in_s)
    async with rt.db.transaction() as session:
        event = await service.create_event(
            rt.db,
            session,
            EventCreate(
                sku=sku.code,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(seconds=lasts_s),
                stock=stock,
                price_minor=price_minor,
                per_buyer_limit=limit,
                channel=channel,
                requires_verified_buyer=verified,
                per_ip_limit=per_ip_limit,
                per_device_limit=per_device_limit,
            ),
            actor="test",
            verification_available=verified is True,
        )
        return event.id


def a_device() -> str:
    """A device token as the server mints them (web.flash_api)."""
    return secrets.token_urlsafe(32)


def new_flash(rt: Runtime, gate: Gate, **settings: Any) -> FlashSale:
    """A FlashSale as one more process would build it: its own queue and caches, the given gate."""
    return FlashSale(
        rt.db,
        rt.settings.model_copy(update={**TEST_SETTINGS, **settings}),
        gate,
        keyring=rt.keyring,
        order_keys=rt.order_keys,
        gateway=rt.dev_gateway,
        shared_gate=isinstance(gate, RedisGate),
    )


async def emptied(gate: Gate, redis: Redis | None, event_id: int) -> Gate:
    """The gate after losing everything it knew of the event: Redis restarted empty, or a new process."""
    if isinstance(gate, RedisGate):
        assert redis is not None
        await redis.delete(*gate.keys(event_id))
        return gate
    return MemoryGate()


@dataclass(frozen=True)
class Tried:
    """One purchase attempt: the answer, or the error code a DomainError carried."""

    buyer: str
    answer: Answer | None = None
    error: str | None = None

    @property
    def result(self) -> str:
        return self.answer.result if self.answer is not None else f"error:{self.error}"


async def attempt(
    flash: FlashSale,
    event_id: int,
    buyer: str,
    *,
    quantity: int = 1,
    request_id: str | None = None,
    ip: str | None = None,
    device: str | None = None,
    verified: str | None = None,
) -> Tried:
    try:
        answer = await flash.purchase(
            event_id,
            buyer,
            quantity,
            request_id if request_id is not None else secrets.token_hex(8),
            buyer_ip=ip,
            device=device,
            verified=verified,
        )
    except DomainError as exc:
        return Tried(buyer, error=exc.code)
    return Tried(buyer, answer)


async def settled(flash: FlashSale, answer: Answer | None) -> Answer:
    """The final answer to a purchase, polling its ticket while it is queued."""
    assert answer is not None
    for _ in range(3000):
        if answer.result != "queued":
            return answer
        assert answer.ticket is not None
        await asyncio.sleep(0.01)
        answer = await flash.ticket(answer.ticket)
    raise AssertionError("the purchase stayed queued")


async def until_queued(flash: FlashSale, event_id: int, purchases: int) -> None:
    """Wait until exactly `purchases` of the event wait in `flash`'s queue (their answers not yet given)."""
    for _ in range(1000):
        if flash.queued(event_id) == purchases:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{flash.queued(event_id)} purchases queued, not {purchases}")


async def held_by_event(rt: Runtime, event_id: int) -> int:
    async with rt.db.read() as session:
        stmt = select(func.count()).select_from(Code).where(Code.order_id == holder_of(event_id))
        return int((await session.execute(stmt)).scalar_one())


def hold_commits(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold every flash-sale batch before its transaction until the returned event is set.

    A thread's event, not asyncio's: on PostgreSQL the batch commits on a loop and thread of its own.
    """
    release = threading.Event()
    real_commit = committer.commit_batch

    async def held(*args: object, **kwargs: object) -> object:
        await asyncio.to_thread(release.wait)
        return await real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(committer, "commit_batch", held)
    return release
