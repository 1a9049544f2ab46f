"""Callback endpoints and the delivery outbox: secrets shown once and sealed, events only from committed changes."""

import json

import pytest
from sqlalchemy import select

from kaquan.audit.models import AuditEntry
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks.errors import EndpointNotFound
from kaquan.channels.callbacks.models import CallbackDelivery, CallbackEndpoint
from kaquan.kit import clock
from kaquan.kit.crypto import KeyMismatch, KeyRing
from kaquan.kit.db import Database

URL = "http://127.0.0.1:9/hooks/kaquan?token=abc123"


async def set_url(db: Database, keyring: KeyRing, agent_id: int = 7, url: str = URL) -> str:
    async with db.transaction() as session:
        return await callbacks.set_endpoint(
            db, session, keyring, agent_id=agent_id, url=url, allow_private=True, actor="alice"
        )


async def the_endpoint(db: Database, agent_id: int = 7) -> CallbackEndpoint:
    async with db.read() as session:
        found = await callbacks.get_endpoint(session, agent_id)
    assert found is not None
    return found


async def audit_entries(db: Database) -> list[AuditEntry]:
    async with db.read() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def all_deliveries(db: Database) -> list[CallbackDelivery]:
    async with db.read() as session:
        return list((await session.execute(select(CallbackDelivery).order_by(CallbackDelivery.id))).scalars())


async def test_the_secret_is_shown_once_sealed_at_rest_and_never_audited(db: Database, keyring: KeyRing) -> None:
    secret = await set_url(db, keyring)

    endpoint = await the_endpoint(db)
    assert secret.startswith("whsec_")
    assert endpoint.url == URL
    assert secret.encode() not in endpoint.secret_sealed
    assert secret.removeprefix("whsec_").encode() not in endpoint.secret_sealed
    async with db.transaction() as session:
        box = await callbacks.secret_box(db, session, keyring)
    assert box.open(endpoint.secret_sealed, callbacks.sealed_for(7)) == secret

    [entry] = await audit_entries(db)
    assert (entry.actor, entry.action, entry.target) == ("alice", "callback_endpoint.set", "agent:7")
    assert entry.after == {"url": "http://127.0.0.1:9/hooks/kaquan?…", "secret": "new"}
    recorded = json.dumps([entry.before, entry.after])
    assert secret not in recorded
    assert "abc123" not in recorded, "a token in the URL's query stays out of the audit trail"


async def test_a_sealed_secret_does_not_open_for_another_agent(db: Database, keyring: KeyRing) -> None:
    await set_url(db, keyring)
    endpoint = await the_endpoint(db)
    async with db.transaction() as session:
        box = await callbacks.secret_box(db, session, keyring)

    with pytest.raises(KeyMismatch):
        box.open(endpoint.secret_sealed, callbacks.sealed_for(8))


async def test_setting_the_url_again_rotates_the_secret_and_keeps_the_old_one_for_a_grace_period(
    db: Database, keyring: KeyRing
) -> None:
    first = await set_url(db, keyring)
    before = await the_endpoint(db)

    second = await set_url(db, keyring, url="http://localhost:8443/v2")

    after = await the_endpoint(db)
    assert second != first
    assert after.id == before.id
    assert after.url == "http://localhost:8443/v2"
    assert after.previous_sealed == before.secret_sealed
    assert after.previous_valid_until == after.updated_at + callbacks.SECRET_GRACE
    entry = (await audit_entries(db))[-1]
    assert entry.before == {"url": "http://127.0.0.1:9/hooks/kaquan?…", "disabled": None}
    assert entry.after == {"url": "http://localhost:8443/v2", "secret": "rotated"}


async def test_an_event_for_an_agent_without_an_endpoint_is_not_queued(db: Database) -> None:
    async with db.transaction() as session:
        assert await callbacks.notify(session, agent_id=99, event_type="order.paid", data={"order_no": "A1"}) is None

    assert await all_deliveries(db) == []


async def test_an_event_is_queued_pending_and_due_now_with_a_fresh_event_id(db: Database, keyring: KeyRing) -> None:
    await set_url(db, keyring)

    async with db.transaction() as session:
        first = await callbacks.notify(session, agent_id=7, event_type="order.paid", data={"order_no": "A1"})
        second = await callbacks.notify(session, agent_id=7, event_type="order.delivered", data={"order_no": "A1"})

    [one, two] = await all_deliveries(db)
    assert (one.event_id, two.event_id) == (first, second)
    assert first is not None and first.startswith("evt_") and len(first) == 36
    assert first != second
    assert (one.status, one.attempts, one.event_type, one.payload) == ("pending", 0, "order.paid", {"order_no": "A1"})
    assert one.next_attempt_at <= clock.now()
    assert one.give_up_at == one.created_at + callbacks.RETRY_WINDOW


async def test_an_event_queued_in_a_rolled_back_transaction_never_exists(db: Database, keyring: KeyRing) -> None:
    await set_url(db, keyring)

    with pytest.raises(LookupError):
        async with db.transaction() as session:
            assert await callbacks.notify(session, agent_id=7, event_type="order.paid", data={"n": 1}) is not None
            raise LookupError("the order change failed")

    assert await all_deliveries(db) == []
    async with db.transaction() as session:  # the control: committed, it exists
        await callbacks.notify(session, agent_id=7, event_type="order.paid", data={"n": 2})
    assert [d.payload for d in await all_deliveries(db)] == [{"n": 2}]


async def test_an_event_that_is_not_json_is_refused_in_the_callers_code(db: Database, keyring: KeyRing) -> None:
    await set_url(db, keyring)

    async with db.transaction() as session:
        with pytest.raises(TypeError):
            await callbacks.notify(session, agent_id=7, event_type="order.paid", data={"at": clock.now()})
        with pytest.raises(ValueError, match="event type"):
            await callbacks.notify(session, agent_id=7, event_type="", data={})

    assert await all_deliveries(db) == []


async def test_removing_the_endpoint_cancels_what_is_pending_and_stops_new_events(
    db: Database, keyring: KeyRing
) -> None:
    await set_url(db, keyring)
    await set_url(db, keyring, agent_id=8)
    async with db.transaction() as session:
        for agent_id in (7, 7, 8):
            await callbacks.notify(session, agent_id=agent_id, event_type="order.paid", data={})

    async with db.transaction() as session:
        await callbacks.remove_endpoint(db, session, agent_id=7, actor="alice")

    assert [(d.agent_id, d.status) for d in await all_deliveries(db)] == [
        (7, "cancelled"),
        (7, "cancelled"),
        (8, "pending"),
    ]
    async with db.transaction() as session:
        assert await callbacks.get_endpoint(session, 7) is None
        assert await callbacks.notify(session, agent_id=7, event_type="order.paid", data={}) is None
    entry = (await audit_entries(db))[-1]
    assert (entry.action, entry.target, entry.after) == (
        "callback_endpoint.removed",
        "agent:7",
        {"cancelled_deliveries": 2},
    )
    with pytest.raises(EndpointNotFound):
        async with db.transaction() as session:
            await callbacks.remove_endpoint(db, session, agent_id=7, actor="alice")
