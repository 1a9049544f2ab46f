"""Admitting a purchase without touching the database: the event as this process knows it, then the gate.

A purchase is checked against the event (cached in memory per process), then the
gate admits or refuses it: sold out, over the buyer's, address's or device's
limit, event closed. A reconcile (on an event's first use here, when the gate
comes back empty, and every `flash_reconcile_s` while nothing of the event is in
flight here) re-derives the gate from the database, so a crash between admission
and commit loses nothing: that admission never moved a code.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import RedisError

from kaquan.buyers.errors import BuyerTokenRequired
from kaquan.flashsale import service
from kaquan.flashsale.committer import Admitted
from kaquan.flashsale.errors import ChannelNotAllowed, EventEnded, EventNotStarted, InvalidQuantity
from kaquan.flashsale.gate import Admission, Gate
from kaquan.flashsale.keys import buyer_tag, device_tag, ip_tag, normal_buyer, purchase_key
from kaquan.flashsale.models import Event
from kaquan.flashsale.reconcile import GateTruth, reconcile
from kaquan.kit import clock, tasks
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Busy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventInfo:
    """What admission needs to know about an event, cached per process."""

    id: int
    name: str
    sku_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    per_buyer_limit: int
    channel: str | None
    price_minor: int
    currency: str
    requires_verified_buyer: bool
    per_ip_limit: int
    per_device_limit: int

    @classmethod
    def of(cls, event: Event) -> "EventInfo":
        return cls(
            event.id,
            event.name,
            event.sku_id,
            event.starts_at,
            event.ends_at,
            event.status,
            event.per_buyer_limit,
            event.channel,
            event.price_minor,
            event.currency,
            event.requires_verified_buyer,
            event.per_ip_limit,
            event.per_device_limit,
        )


def buyer_of(info: EventInfo, buyer: str, quantity: int, *, channel: str, verified: str | None) -> str:
    """The buyer as the event counts it, once the purchase fits the event's rules (channel, quantity, verification).

    `verified`: the contact a buyer token proves; when given it is the buyer.
    """
    if verified is not None:
        who = verified
    elif info.requires_verified_buyer:
        raise BuyerTokenRequired()
    else:
        who = normal_buyer(buyer)
        if not who or len(who) > 200:
            raise BadInput("a buyer id (account, phone or email) of 1 to 200 characters is required", field="buyer")
    if info.channel is not None and info.channel != channel:
        raise ChannelNotAllowed(info.id, channel)
    if not 1 <= quantity <= info.per_buyer_limit:
        raise InvalidQuantity(quantity, info.per_buyer_limit)
    return who


def admitted(
    event_id: int,
    who: str,
    quantity: int,
    request_id: str,
    *,
    channel: str,
    buyer_ip: str | None,
    device: str | None,
    verified: bool = False,
) -> Admitted:
    """The purchase as the gate and the committer know it: tagged buyer, address and device, and its key.

    `verified`: `who` is a contact the buyer proved; the order records it as its buyer_contact.
    """
    device_id = device_tag(device) if device is not None else None
    return Admitted(
        event_id,
        who,
        purchase_key(who, request_id, device_id),
        quantity,
        channel,
        buyer_ip,
        ip_tag(buyer_ip) if buyer_ip is not None else None,
        device_id,
        verified,
    )


class Admissions:
    """The events this process knows, the gate in front of them, and reconciling it with the database.

    `in_flight(event_id)` says whether purchases of the event are between admission and settlement
    here; the periodic reconcile leaves those events alone.
    """

    def __init__(self, db: Database, settings: Settings, gate: Gate, *, in_flight: Callable[[int], bool]) -> None:
        self.db = db
        self.gate = gate
        self._settings = settings
        self._in_flight = in_flight
        self._events: dict[int, EventInfo] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._active: set[int] = set()
        self._reconciler: asyncio.Task[None] | None = None

    async def info(self, event_id: int) -> EventInfo:
        info = self._events.get(event_id)
        if info is None:
            async with self.db.read() as session:
                info = EventInfo.of(await service.get_event(session, event_id))
            self._events[event_id] = info
        return info

    def known(self, event_id: int) -> EventInfo | None:
        """The event as this process knows it, once it has been opened here (else None)."""
        return self._events.get(event_id) if event_id in self._active else None

    def remember(self, event: Event) -> None:
        self._events[event.id] = EventInfo.of(event)

    def forget(self, event_id: int) -> None:
        self._events.pop(event_id, None)

    async def open(self, info: EventInfo) -> EventInfo:
        """The event, started if its time has come; refused when it has not or is over.

        The first purchase of an event in this process starts it if need be and reconciles its
        gate: admissions lost by a crashed predecessor come back before anyone is told sold out.
        """
        event_id = info.id
        now = clock.now()
        if now < info.starts_at:
            raise EventNotStarted(event_id, info.starts_at.isoformat())
        if event_id not in self._active and info.status != "ended" and now < info.ends_at:
            async with self._lock(event_id):
                if event_id not in self._active:
                    if self._events.get(event_id, info).status == "scheduled":
                        await self.db.run(lambda session: service.start_if_due(self.db, session, event_id))
                    await self.reconcile(event_id)
            info = self._events.get(event_id, info)
        if info.status != "live" or now >= info.ends_at:
            raise EventEnded(event_id)
        self._keep_reconciling()
        return info

    async def admit(self, info: EventInfo, item: Admitted) -> Admission:
        for _ in range(2):
            admission = await self.gate.admit(
                item.event_id,
                buyer_tag(item.buyer),
                item.quantity,
                limit=info.per_buyer_limit,
                request=item.key,
                now_ms=int(clock.now().timestamp() * 1000),
                stale_ms=self._settings.flash_stale_s * 1000,
                ip=item.ip_tag or "",
                ip_limit=info.per_ip_limit,
                device=item.device_tag or "",
                device_limit=info.per_device_limit,
            )
            if admission.verdict != "unloaded":
                return admission
            async with self._lock(item.event_id):
                if await self.gate.view(item.event_id) is None:
                    await self.reconcile(item.event_id)
        raise Busy("the flash-sale gate is not ready; try again", retry_after=1)

    async def reconcile(self, event_id: int) -> GateTruth:
        """Re-derive the event's gate from database truth (safe at any time: the gate may only err high)."""
        try:
            truth = await reconcile(self.db, self.gate, event_id)
        except (RedisError, OSError) as exc:
            raise Busy("the flash-sale gate cannot be reached; try again", retry_after=1) from exc
        self._events[event_id] = EventInfo.of(truth.event)
        if truth.open:
            self._active.add(event_id)
        else:
            self._active.discard(event_id)
        return truth

    async def close(self) -> None:
        """Stop reconciling."""
        await tasks.stop(self._reconciler)

    def _lock(self, event_id: int) -> asyncio.Lock:
        return self._locks.setdefault(event_id, asyncio.Lock())

    def _keep_reconciling(self) -> None:
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(self._reconcile_forever(), name="flash-sale reconcile")

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.flash_reconcile_s)
            for event_id in sorted(self._active):
                if self._in_flight(event_id):
                    continue
                try:
                    await self.reconcile(event_id)
                except Exception as exc:
                    log.warning("flash-sale reconcile of event %d failed: %s", event_id, type(exc).__name__)
