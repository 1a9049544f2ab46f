"""Re-deriving the gate from database truth.

Tokens are the codes the event still holds in the inventory; per-buyer,
per-address and per-device counts are the units each has won (purchase rows). Nothing the gate believed is
kept but the states of requests. An admission that never reached the database
(a crash between admission and commit) held nothing there, so a reconcile simply
gives its stock back to the gate.

Run on the first use of an event in a process, when the gate turns out empty
(Redis restarted), and periodically while this process has nothing in flight.
Admissions in flight in other processes are not counted, so right after a
reconcile the gate may know a little too much stock: it errs high, and the
database, which re-checks everything at commit, answers those buyers sold out.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.flashsale import service
from kaquan.flashsale.gate import Gate
from kaquan.flashsale.keys import buyer_tag
from kaquan.flashsale.models import Event
from kaquan.kit import clock
from kaquan.kit.db import Database

# Gate keys outlive the event by this much, then Redis forgets them on its own.
KEEP_AFTER_END = timedelta(hours=1)


@dataclass(frozen=True)
class GateTruth:
    event: Event
    open: bool
    tokens: int
    buyers: dict[str, int]
    ttl_s: int
    ips: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)


async def gate_truth(session: AsyncSession, event_id: int) -> GateTruth:
    """What the gate of one event should hold, from the database alone."""
    event = await service.get_event(session, event_id)
    now = clock.now()
    ttl_s = max(int((event.ends_at + KEEP_AFTER_END - now).total_seconds()), 60)
    if not service.is_open(event, now):
        return GateTruth(event, False, 0, {}, ttl_s)
    counters = await service.counters(session, event)
    won = await service.units_by_buyer(session, event_id)
    buyers = {buyer_tag(buyer): units for buyer, units in won.items()}
    ips = await service.units_by_ip(session, event_id)
    devices = await service.units_by_device(session, event_id)
    return GateTruth(event, True, counters.held, buyers, ttl_s, ips, devices)


async def reconcile(db: Database, gate: Gate, event_id: int) -> GateTruth:
    """Load the gate of one event from database truth; returns what was loaded."""
    async with db.read() as session:
        truth = await gate_truth(session, event_id)
    await gate.load(
        event_id,
        tokens=truth.tokens,
        buyers=truth.buyers,
        open=truth.open,
        ttl_s=truth.ttl_s,
        ips=truth.ips,
        devices=truth.devices,
    )
    return truth
