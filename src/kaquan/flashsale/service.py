"""Flash-sale events: schedule, start (take the allotment), end (give back the rest), and their counters.

Starting an event claims its stock from central inventory and holds it `reserved`
under the event's holder id until the end; purchases move codes from that holder
to their orders (`orders.batch_placing.place_many(from_holder=…)`). Ending releases what the
event still holds back to available stock. Everything here runs in the caller's
transaction and locks the event row first, so a start, an end and the commit of a
batch of purchases of one event never interleave.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.flashsale.errors import EventNotFound, InvalidEvent
from kaquan.flashsale.models import Event, Purchase
from kaquan.flashsale.schemas import DEVICE_LIMIT_FACTOR, IP_LIMIT_FACTOR, EventCreate
from kaquan.inventory import OutOfStock, allocation, handouts
from kaquan.kit import clock
from kaquan.kit.db import Database


def describe(event: Event) -> dict[str, Any]:
    """The event as audit entries record it."""
    return {
        "name": event.name,
        "sku_id": event.sku_id,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "stock": event.stock,
        "allotted": event.allotted,
        "price_minor": event.price_minor,
        "currency": event.currency,
        "per_buyer_limit": event.per_buyer_limit,
        "requires_verified_buyer": event.requires_verified_buyer,
        "per_ip_limit": event.per_ip_limit,
        "per_device_limit": event.per_device_limit,
        "channel": event.channel,
        "status": event.status,
    }


async def create_event(
    db: Database,
    session: AsyncSession,
    data: EventCreate,
    *,
    actor: str,
    ip: str | None = None,
    verification_available: bool = False,
) -> Event:
    """Schedule an event; one whose start has come takes its whole allotment at once or is refused.

    `verification_available`: the shop can send codes to buyers' contacts. Verified buyers are then
    required unless the event says otherwise: a limit per made-up buyer string holds nobody, so the
    safe default is the one that counts something a buyer cannot mint for free. Without any way to
    send codes, an event requiring them could never sell, and is refused.
    """
    verified = data.requires_verified_buyer
    if verified is None:
        verified = verification_available
    elif verified and not verification_available:
        raise InvalidEvent(
            "verified buyers need a way to send them codes: configure KAQUAN_SMTP_HOST or KAQUAN_SMS_WEBHOOK_URL",
            field="requires_verified_buyer",
        )
    sku = await catalog.get_sku(session, data.sku)
    if sku.stock_kind != "codes":
        raise InvalidEvent("flash sales sell unique-code SKUs only", sku=sku.code)
    if not sku.active:
        raise InvalidEvent(f"SKU {sku.code} is not for sale", sku=sku.code)
    now = clock.now()
    if data.ends_at <= data.starts_at:
        raise InvalidEvent("ends_at must be after starts_at", field="ends_at")
    if data.ends_at <= now:
        raise InvalidEvent("ends_at is in the past", field="ends_at")
    available = await allocation.available_units(session, sku, at_most=data.stock)
    if available < data.stock:
        raise OutOfStock(sku.id, wanted=data.stock, available=available)
    event = Event(
        name=data.name.strip() or sku.name,
        sku_id=sku.id,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        stock=data.stock,
        allotted=0,
        released=0,
        price_minor=data.price_minor,
        currency=sku.currency,
        per_buyer_limit=data.per_buyer_limit,
        requires_verified_buyer=verified,
        per_ip_limit=data.per_ip_limit or IP_LIMIT_FACTOR * data.per_buyer_limit,
        per_device_limit=data.per_device_limit or DEVICE_LIMIT_FACTOR * data.per_buyer_limit,
        channel=data.channel,
        status="scheduled",
        created_by=actor,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    if event.starts_at <= now:
        await _take_allotment(db, session, event, sku, exact=True)
    await audit.record(
        session, actor, "flashsale.event_created", target=f"flashsale_event:{event.id}", after=describe(event), ip=ip
    )
    return event


async def _take_allotment(db: Database, session: AsyncSession, event: Event, sku: Sku, *, exact: bool) -> None:
    """Hold up to `event.stock` available codes under the event until it ends (all of them when `exact`)."""
    claimed = await handouts.claim_available(db, session, sku.id, event.stock)
    if exact and len(claimed) < event.stock:
        raise OutOfStock(sku.id, wanted=event.stock, available=len(claimed))
    if claimed:
        await handouts.hand_out(
            session,
            [handouts.Handout(event.holder_id, tuple(claimed))],
            source="available",
            target="reserved",
            hold_until=event.ends_at,
        )
    event.allotted = len(claimed)
    event.status = "live"
    event.started_at = clock.now()


async def get_event(session: AsyncSession, event_id: int) -> Event:
    event = await session.get(Event, event_id)
    if event is None:
        raise EventNotFound(event_id)
    return event


async def locked_event(db: Database, session: AsyncSession, event_id: int) -> Event:
    stmt = db.lock(select(Event).where(Event.id == event_id)).execution_options(populate_existing=True)
    event = (await session.execute(stmt)).scalar_one_or_none()
    if event is None:
        raise EventNotFound(event_id)
    return event


async def list_events(session: AsyncSession, *, limit: int = 200) -> list[Event]:
    """The newest events first."""
    return list((await session.execute(select(Event).order_by(Event.id.desc()).limit(limit))).scalars())


async def unfinished(session: AsyncSession) -> int:
    """How many events are scheduled or live."""
    stmt = select(func.count()).select_from(Event).where(Event.status.in_(("scheduled", "live")))
    return int((await session.execute(stmt)).scalar_one())


async def start_if_due(db: Database, session: AsyncSession, event_id: int) -> Event:
    """Start a scheduled event whose time has come (taking what stock there is); other events are left alone."""
    event = await locked_event(db, session, event_id)
    now = clock.now()
    if event.status == "scheduled" and event.starts_at <= now:
        if event.ends_at <= now:
            await _close(session, event)
        else:
            await _take_allotment(db, session, event, await catalog.get_sku(session, event.sku_id), exact=False)
    return event


async def end_event(
    db: Database, session: AsyncSession, event_id: int, *, actor: str | None = None, ip: str | None = None
) -> Event:
    """End an event now (an operator, `actor`) or at its end time (the worker); ending twice changes nothing."""
    event = await locked_event(db, session, event_id)
    if event.status == "ended":
        return event
    before = {"status": event.status}
    await _close(session, event)
    if actor is not None:
        await audit.record(
            session,
            actor,
            "flashsale.event_ended",
            target=f"flashsale_event:{event.id}",
            before=before,
            after={"status": event.status, "released": event.released},
            ip=ip,
        )
    return event


async def _close(session: AsyncSession, event: Event) -> None:
    event.released = await allocation.release(session, event.holder_id) if event.status == "live" else 0
    event.status = "ended"
    event.ended_at = clock.now()


async def run_due(db: Database, session: AsyncSession, *, limit: int = 20) -> list[int]:
    """Start events whose start has come and end those whose end has; returns the ids changed."""
    now = clock.now()
    due = db.claim(
        select(Event.id)
        .where(
            or_(
                and_(Event.status == "scheduled", Event.starts_at <= now),
                and_(Event.status == "live", Event.ends_at <= now),
            )
        )
        .order_by(Event.id)
        .limit(limit)
    )
    changed = list((await session.execute(due)).scalars())
    for event_id in changed:
        event = await start_if_due(db, session, event_id)
        if event.status == "live" and event.ends_at <= now:
            await end_event(db, session, event_id)
    return changed


@dataclass(frozen=True)
class Counters:
    """Database truth about one event: units won (and by how many purchases), units still held."""

    sold: int
    purchases: int
    held: int


async def counters(session: AsyncSession, event: Event) -> Counters:
    won = await session.execute(
        select(func.coalesce(func.sum(Purchase.quantity), 0), func.count()).where(Purchase.event_id == event.id)
    )
    sold, purchases = won.one()
    held = await allocation.held_units(session, event.holder_id, "reserved")
    return Counters(int(sold), int(purchases), held)


async def units_by_buyer(session: AsyncSession, event_id: int, buyers: set[str] | None = None) -> dict[str, int]:
    """Units each buyer has won in the event (all buyers, or just `buyers`)."""
    return await _units_by(session, Purchase.buyer, event_id, buyers)


async def units_by_ip(session: AsyncSession, event_id: int, tags: set[str] | None = None) -> dict[str, int]:
    """Units won in the event per client address tag (keys.ip_tag)."""
    return await _units_by(session, Purchase.ip_tag, event_id, tags)


async def units_by_device(session: AsyncSession, event_id: int, tags: set[str] | None = None) -> dict[str, int]:
    """Units won in the event per device tag (keys.device_tag)."""
    return await _units_by(session, Purchase.device_tag, event_id, tags)


@dataclass(frozen=True)
class UnitsWon:
    """Units won so far in an event by some buyers, address tags and device tags (absent: none)."""

    by_buyer: dict[str, int]
    by_ip: dict[str, int]
    by_device: dict[str, int]


async def units_won(
    session: AsyncSession, event_id: int, *, buyers: set[str], ips: set[str], devices: set[str]
) -> UnitsWon:
    """`units_by_buyer`, `units_by_ip` and `units_by_device` of just these holders, in one round trip."""
    parts = [
        select(literal(kind).label("kind"), column.label("holder"), func.sum(Purchase.quantity).label("units"))
        .where(Purchase.event_id == event_id, column.in_(values))
        .group_by(column)
        for kind, column, values in (
            ("buyer", Purchase.buyer, buyers),
            ("ip", Purchase.ip_tag, ips),
            ("device", Purchase.device_tag, devices),
        )
        if values
    ]
    found: dict[str, dict[str, int]] = {"buyer": {}, "ip": {}, "device": {}}
    if parts:
        for kind, holder, units in await session.execute(union_all(*parts)):
            if holder is not None:
                found[kind][holder] = int(units)
    return UnitsWon(found["buyer"], found["ip"], found["device"])


async def _units_by(
    session: AsyncSession, column: InstrumentedAttribute[Any], event_id: int, values: set[str] | None
) -> dict[str, int]:
    stmt = select(column, func.sum(Purchase.quantity)).where(Purchase.event_id == event_id, column.is_not(None))
    if values is not None:
        if not values:
            return {}
        stmt = stmt.where(column.in_(values))
    rows = await session.execute(stmt.group_by(column))
    return {value: int(units) for value, units in rows}


async def purchases_by_key(session: AsyncSession, event_id: int, keys: set[str]) -> dict[str, Purchase]:
    rows = await session.execute(select(Purchase).where(Purchase.event_id == event_id, Purchase.key.in_(keys)))
    return {purchase.key: purchase for purchase in rows.scalars()}


def is_open(event: Event, now: datetime) -> bool:
    return event.status == "live" and event.starts_at <= now < event.ends_at
