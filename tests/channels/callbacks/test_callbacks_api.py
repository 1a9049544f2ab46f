"""The callbacks admin API: deliveries and their attempts to read, replay to change, each behind its permission."""

from collections.abc import Iterator

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.callback_receiver import Answer, Receiver
from tests.support.callbacks import TIMEOUT_S, deliveries, given_endpoint, notify, work
from tests.support.http import the_error
from tests.support.identity import HeadersFor

from kaquan.audit.models import AuditEntry
from kaquan.channels.callbacks import sender
from kaquan.channels.callbacks import service as callbacks
from kaquan.identity.permissions import Permission
from kaquan.runtime import Runtime

BASE = "/admin/api/callbacks/deliveries"


async def test_deliveries_are_listed_newest_first_filtered_and_paged(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor, receiver: Receiver
) -> None:
    support = await headers_for("support")
    await given_endpoint(rt.db, rt.keyring, receiver, 11)
    await given_endpoint(rt.db, rt.keyring, receiver, 12)
    first, second = await notify(rt.db, 11, count=2)
    [other] = await notify(rt.db, 12)
    await receiver.start()
    async with httpx.AsyncClient() as http:
        assert await sender.deliver_due(rt.db, rt.keyring, client=http, allow_private=True, limit=1) == 1

    listed = await client.get(BASE, headers=support)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [d["event_id"] for d in page["deliveries"]] == [other, second, first]
    assert page["next_before_id"] is None
    oldest = page["deliveries"][2]
    assert {key: oldest[key] for key in ("agent_id", "event_type", "status", "attempts", "last_status_code")} == {
        "agent_id": 11,
        "event_type": "order.delivered",
        "status": "delivered",
        "attempts": 1,
        "last_status_code": 200,
    }
    assert oldest["delivered_at"] is not None
    assert set(oldest) == {
        "id",
        "event_id",
        "agent_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "give_up_at",
        "created_at",
        "delivered_at",
        "last_status_code",
    }

    by_agent = (await client.get(BASE, params={"agent_id": 11}, headers=support)).json()
    assert [d["event_id"] for d in by_agent["deliveries"]] == [second, first]
    pending = (await client.get(BASE, params={"status": "pending"}, headers=support)).json()
    assert [d["event_id"] for d in pending["deliveries"]] == [other, second]

    one = (await client.get(BASE, params={"limit": 2}, headers=support)).json()
    assert [d["event_id"] for d in one["deliveries"]] == [other, second]
    rest = (await client.get(BASE, params={"limit": 2, "before_id": one["next_before_id"]}, headers=support)).json()
    assert [d["event_id"] for d in rest["deliveries"]] == [first]
    assert rest["next_before_id"] is None

    bad = await client.get(BASE, params={"status": "lost"}, headers=support)
    the_error(bad, 422, "validation_error")


async def test_a_delivery_shows_its_payload_and_every_attempt(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor, receiver: Receiver
) -> None:
    answers: Iterator[Answer] = iter(["error", "ok"])
    receiver.answer = lambda path: next(answers)
    await receiver.start()
    await given_endpoint(rt.db, rt.keyring, receiver, 11)
    [event_id] = await notify(rt.db, 11)
    async with httpx.AsyncClient() as http:
        await work(rt.db, rt.keyring, http)
    [delivery] = await deliveries(rt.db)

    response = await client.get(f"{BASE}/{delivery.id}", headers=await headers_for("support"))

    assert response.status_code == 200, response.text
    detail = response.json()
    assert (detail["event_id"], detail["status"], detail["attempts"]) == (event_id, "delivered", 2)
    assert detail["payload"] == {"n": 0}
    assert [(a["status_code"], a["error"], a["url"]) for a in detail["attempt_log"]] == [
        (500, None, receiver.url("/agents/11")),
        (200, None, receiver.url("/agents/11")),
    ]
    assert all(a["duration_ms"] >= 0 for a in detail["attempt_log"])


async def test_a_replay_through_the_api_resends_under_the_same_event_id_and_is_audited(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor, receiver: Receiver
) -> None:
    operator = await headers_for("operator", username="olga")
    await receiver.start()
    await given_endpoint(rt.db, rt.keyring, receiver, 11)
    [event_id] = await notify(rt.db, 11)
    async with httpx.AsyncClient() as http:
        await work(rt.db, rt.keyring, http)
        [delivery] = await deliveries(rt.db)

        response = await client.post(f"{BASE}/{delivery.id}/replay", headers=operator)
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["event_id"]) == ("pending", event_id)
        await sender.deliver_due(rt.db, rt.keyring, client=http, allow_private=True, timeout_s=TIMEOUT_S)

    assert [request.event_id for request in receiver.requests] == [event_id, event_id]
    assert receiver.accepted == [event_id, event_id]
    async with rt.db.read() as session:
        [entry] = [e for e in await callbacks_audit(session) if e.action == "callback_delivery.replayed"]
    assert entry.actor.startswith("olga")
    assert entry.target == f"callback_delivery:{delivery.id}"


async def callbacks_audit(session: AsyncSession) -> list[AuditEntry]:
    return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_a_replay_to_an_agent_without_an_endpoint_is_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    await given_endpoint(rt.db, rt.keyring, receiver, 11)
    await notify(rt.db, 11)
    async with rt.db.transaction() as session:
        await callbacks.remove_endpoint(rt.db, session, agent_id=11, actor="test")
    [delivery] = await deliveries(rt.db)

    response = await client.post(f"{BASE}/{delivery.id}/replay", headers=admin_headers)

    details = the_error(response, 409, "callback_replay_refused")
    assert details == {"delivery_id": delivery.id, "agent_id": 11, "reason": "no_endpoint"}
    assert [d.status for d in await deliveries(rt.db)] == ["cancelled"]


async def test_unknown_deliveries_are_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for response in (
        await client.get(f"{BASE}/987654", headers=admin_headers),
        await client.post(f"{BASE}/987654/replay", headers=admin_headers),
    ):
        assert the_error(response, 404, "callback_delivery_not_found") == {"delivery_id": 987654}


async def test_reading_needs_channels_read_and_replaying_needs_channels_write(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor, receiver: Receiver
) -> None:
    await given_endpoint(rt.db, rt.keyring, receiver, 11)
    await notify(rt.db, 11)
    [delivery] = await deliveries(rt.db)
    support = await headers_for("support")  # reads channels, changes nothing
    orders_only = await headers_for("support", scopes=[Permission.ORDERS_READ])

    the_error(await client.get(BASE), 401, "unauthorized")
    the_error(await client.post(f"{BASE}/{delivery.id}/replay"), 401, "unauthorized")
    the_error(await client.get(BASE, headers=orders_only), 403, "forbidden")
    the_error(await client.get(f"{BASE}/{delivery.id}", headers=orders_only), 403, "forbidden")
    assert (await client.get(f"{BASE}/{delivery.id}", headers=support)).status_code == 200
    details = the_error(await client.post(f"{BASE}/{delivery.id}/replay", headers=support), 403, "forbidden")
    assert details == {"permission": "channels.write"}
    assert [(d.status, d.attempts) for d in await deliveries(rt.db)] == [("pending", 0)]
