"""The admin API for flash-sale events: schedule, list, inspect (live counters), end, reconcile the gate."""

from typing import Annotated

from fastapi import APIRouter

from kaquan.buyers.service import any_channel
from kaquan.flashsale import service
from kaquan.flashsale.schemas import EventCreate, EventOut
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import Id
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["flashsale"], dependencies=JSON_ONLY)

FlashRead = Annotated[Principal, require(Permission.FLASHSALE_READ)]
FlashWrite = Annotated[Principal, require(Permission.FLASHSALE_WRITE)]


@router.post("/flash/events", status_code=201)
async def create_event(rt: RuntimeDep, admin: FlashWrite, body: EventCreate) -> EventOut:
    """Schedule an event; one starting now takes its whole allotment from central stock at once (or is refused).

    `requires_verified_buyer` defaults to on when the shop can send codes to buyers (e-mail, SMS, dev codes).
    """
    async with rt.db.transaction() as session:
        event = await service.create_event(
            rt.db,
            session,
            body,
            actor=admin.actor,
            ip=admin.ip,
            verification_available=any_channel(rt.settings),
        )
    return EventOut.of(event)


@router.get("/flash/events")
async def list_events(rt: RuntimeDep, admin: FlashRead) -> list[EventOut]:
    async with rt.db.read() as session:
        return [EventOut.of(event) for event in await service.list_events(session)]


@router.get("/flash/events/{event_id}")
async def event_detail(rt: RuntimeDep, admin: FlashRead, event_id: Id) -> EventOut:
    """The event with live counters: units won, units still held, and what the gate still admits."""
    return await rt.flash.details(event_id)


@router.post("/flash/events/{event_id}/end")
async def end_event(rt: RuntimeDep, admin: FlashWrite, event_id: Id) -> EventOut:
    """End the event now: what it still holds goes back to central stock; won orders keep their codes."""
    return EventOut.of(await rt.flash.end_event(event_id, actor=admin.actor, ip=admin.ip))


@router.post("/flash/events/{event_id}/reconcile")
async def reconcile_gate(rt: RuntimeDep, admin: FlashWrite, event_id: Id) -> EventOut:
    """Re-derive the event's gate from the database now (it also happens on its own every few seconds)."""
    await rt.flash.reconcile(event_id)
    return await rt.flash.details(event_id)
