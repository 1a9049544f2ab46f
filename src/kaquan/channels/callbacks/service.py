"""Callback endpoints, the delivery outbox, manual replay, and the queries behind the admin API.

The wire format and the retry rules are described in `kaquan.channels.callbacks`;
sending lives in `sender`. Payloads are stored as they are given: they must never
hold a code secret (agents fetch codes through the signed open API).
"""

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.channels.callbacks import signing, ssrf
from kaquan.channels.callbacks.errors import DeliveryNotFound, EndpointNotFound, ReplayRefused
from kaquan.channels.callbacks.models import CallbackAttempt, CallbackDelivery, CallbackEndpoint
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, SecretBox
from kaquan.kit.db import Database, share_locked
from kaquan.kit.keys import named_key

SECRETS_KEY = "callbacks.secrets"
RETRY_WINDOW = timedelta(days=3)
SECRET_GRACE = timedelta(hours=24)
EVENT_ID_PREFIX = "evt_"
MAX_EVENT_TYPE = 64


@dataclass(frozen=True)
class DeliveryDetail:
    delivery: CallbackDelivery
    attempts: list[CallbackAttempt]


async def secret_box(db: Database, session: AsyncSession, keyring: KeyRing) -> SecretBox:
    """The box endpoint secrets are sealed in (its key is created on first use)."""
    return SecretBox(await named_key(db, session, keyring, SECRETS_KEY))


def sealed_for(agent_id: int) -> bytes:
    """What an endpoint's sealed secrets are bound to: a ciphertext copied to another agent does not open."""
    return f"kaquan/callbacks/agent/{agent_id}".encode()


def redacted(url: str) -> str:
    """The URL for audit entries: its query (which may hold a token) replaced by `…`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


async def get_endpoint(session: AsyncSession, agent_id: int) -> CallbackEndpoint | None:
    return (
        await session.execute(select(CallbackEndpoint).where(CallbackEndpoint.agent_id == agent_id))
    ).scalar_one_or_none()


async def set_endpoint(
    db: Database, session: AsyncSession, keyring: KeyRing, *, agent_id: int, url: str, allow_private: bool, actor: str
) -> str:
    """Point the agent's callbacks at `url` with a fresh signing secret, returned once and stored sealed.

    Setting it again rotates the secret (the previous one still signs alongside it
    for `SECRET_GRACE`), and re-enables an endpoint that was disabled.
    """
    url = url.strip()
    await ssrf.check(url, allow_private=allow_private)
    secret = signing.new_secret()
    sealed = (await secret_box(db, session, keyring)).seal(secret, sealed_for(agent_id))
    now = clock.now()
    inserted = (
        db.insert(CallbackEndpoint.__table__)  # type: ignore[arg-type]
        .values(
            agent_id=agent_id, url=url, secret_sealed=sealed, consecutive_failures=0, created_at=now, updated_at=now
        )
        .on_conflict_do_nothing(index_elements=["agent_id"])
    )
    await session.execute(inserted)
    endpoint = (
        await session.execute(
            db.lock(select(CallbackEndpoint).where(CallbackEndpoint.agent_id == agent_id)).execution_options(
                populate_existing=True
            )
        )
    ).scalar_one()
    before = None
    if endpoint.secret_sealed != sealed:
        before = {"url": redacted(endpoint.url), "disabled": endpoint.disabled_reason}
        endpoint.previous_sealed = endpoint.secret_sealed
        endpoint.previous_valid_until = now + SECRET_GRACE
        endpoint.url = url
        endpoint.secret_sealed = sealed
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.consecutive_failures = 0
        endpoint.paused_until = None
        endpoint.updated_at = now
    after = {"url": redacted(url), "secret": "new" if before is None else "rotated"}
    await audit.record(session, actor, "callback_endpoint.set", target=f"agent:{agent_id}", before=before, after=after)
    return secret


async def remove_endpoint(db: Database, session: AsyncSession, *, agent_id: int, actor: str) -> None:
    """Stop calling the agent back: the endpoint goes and its pending deliveries are cancelled."""
    endpoint = await get_endpoint(session, agent_id)
    if endpoint is None:
        raise EndpointNotFound(agent_id)
    # Deliveries before their endpoint, the order every callbacks transaction locks in (no deadlocks).
    cancelled = await cancel_pending(session, agent_id)
    await session.delete(endpoint)
    await audit.record(
        session,
        actor,
        "callback_endpoint.removed",
        target=f"agent:{agent_id}",
        before={"url": redacted(endpoint.url)},
        after={"cancelled_deliveries": cancelled},
    )


async def cancel_pending(session: AsyncSession, agent_id: int) -> int:
    """Cancel every pending delivery of the agent; returns how many."""
    result = await session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.agent_id == agent_id, CallbackDelivery.status == "pending")
        .values(status="cancelled", lease_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def notify(session: AsyncSession, *, agent_id: int, event_type: str, data: dict[str, Any]) -> str | None:
    """Queue a callback in the caller's transaction; returns its event id, None if the agent has no live endpoint.

    Rolled back with the caller, so no callback announces a change that never
    happened. An endpoint disabled by a 410 takes no new events until its URL is set again.
    """
    [event_id] = await notify_many(session, agent_id=agent_id, events=[(event_type, data)])
    return event_id


async def notify_many(
    session: AsyncSession, *, agent_id: int, events: Sequence[tuple[str, dict[str, Any]]]
) -> list[str | None]:
    """`notify` for many events of one agent at once (a group-committed batch): one look-up, one insert."""
    for event_type, data in events:
        if not 1 <= len(event_type) <= MAX_EVENT_TYPE:
            raise ValueError(f"an event type is 1 to {MAX_EVENT_TYPE} characters")
        json.dumps(data, allow_nan=False)  # fail here, in the caller's code, rather than at commit
    # Share-locked: the endpoint cannot be removed (leaving this delivery uncancelled) before the caller commits.
    disabled = (
        await session.execute(
            share_locked(session, select(CallbackEndpoint.disabled_at).where(CallbackEndpoint.agent_id == agent_id))
        )
    ).one_or_none()
    if disabled is None or disabled.disabled_at is not None:
        return [None] * len(events)
    now = clock.now()
    event_ids: list[str | None] = [EVENT_ID_PREFIX + secrets.token_hex(16) for _ in events]
    await session.execute(
        insert(CallbackDelivery),
        [
            {
                "event_id": event_id,
                "agent_id": agent_id,
                "event_type": event_type,
                "payload": data,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "give_up_at": now + RETRY_WINDOW,
                "created_at": now,
            }
            for event_id, (event_type, data) in zip(event_ids, events, strict=True)
        ],
    )
    return event_ids


async def replay(db: Database, session: AsyncSession, delivery_id: int, *, actor: str) -> CallbackDelivery:
    """Send a delivery again, due now with a fresh retry window, under the same event id (receivers dedupe by it)."""
    delivery = (
        await session.execute(db.lock(select(CallbackDelivery).where(CallbackDelivery.id == delivery_id)))
    ).scalar_one_or_none()
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    endpoint = await get_endpoint(session, delivery.agent_id)
    if endpoint is None or endpoint.disabled_at is not None:
        reason = None if endpoint is None else endpoint.disabled_reason or "disabled"
        raise ReplayRefused(delivery_id, delivery.agent_id, disabled_reason=reason)
    before = {"status": delivery.status, "attempts": delivery.attempts}
    now = clock.now()
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.give_up_at = now + RETRY_WINDOW
    delivery.delivered_at = None
    await audit.record(
        session,
        actor,
        "callback_delivery.replayed",
        target=f"callback_delivery:{delivery_id}",
        before=before,
        after={"status": "pending", "event_id": delivery.event_id},
    )
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    agent_id: int | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[CallbackDelivery]:
    """Deliveries newest first, filtered; page with `before_id` (the last id of the previous page)."""
    stmt = select(CallbackDelivery)
    if agent_id is not None:
        stmt = stmt.where(CallbackDelivery.agent_id == agent_id)
    if status is not None:
        stmt = stmt.where(CallbackDelivery.status == status)
    if before_id is not None:
        stmt = stmt.where(CallbackDelivery.id < before_id)
    return list((await session.execute(stmt.order_by(CallbackDelivery.id.desc()).limit(limit))).scalars())


async def delivery_detail(session: AsyncSession, delivery_id: int) -> DeliveryDetail:
    """One delivery and its attempts, oldest attempt first."""
    delivery = await session.get(CallbackDelivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    attempts = await session.execute(
        select(CallbackAttempt).where(CallbackAttempt.delivery_id == delivery_id).order_by(CallbackAttempt.id)
    )
    return DeliveryDetail(delivery, list(attempts.scalars()))
