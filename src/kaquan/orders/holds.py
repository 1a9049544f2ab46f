"""How much an anonymous buyer may hold unpaid, and for how long (denial of inventory).

An unpaid order holds its codes until it expires, so a bot placing orders it never
pays takes stock off sale for nothing. Three controls bound that:

- per client: the unpaid orders of one IP address, one device (its client token)
  or one contact may hold only a few orders and units at once (`check_caps`);
- per order: a shop order holds at most a few units, whatever the SKU allows;
- under pressure: once unpaid orders hold a large share of a SKU's sellable
  stock, new holds are short (`hold_minutes`), so what a bot holds comes back soon.

The per-client count and the insert that follows it are serialized per client
(`serialize_client`): otherwise simultaneous requests would each count the same
few orders and all pass.
"""

import math
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import ColumnElement, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import available_units
from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.kit.db import Database, serialize_on_all
from kaquan.orders.errors import TooManyUnpaidOrders
from kaquan.orders.models import Order

# A literal, not a parameter: the planner then uses the partial indexes of unpaid orders.
_UNPAID = Order.status == literal_column("'pending_payment'")


@dataclass(frozen=True)
class HoldPolicy:
    """The limits on unpaid holds of the anonymous shop (see the Settings of the same names)."""

    max_units_per_order: int
    orders_per_client: int
    units_per_client: int
    pressure_share: float
    pressure_hold_minutes: int

    @classmethod
    def of(cls, settings: Settings) -> "HoldPolicy":
        return cls(
            max_units_per_order=settings.shop_max_per_order,
            orders_per_client=settings.unpaid_orders_per_client,
            units_per_client=settings.unpaid_units_per_client,
            pressure_share=settings.hold_pressure_share,
            pressure_hold_minutes=settings.hold_minutes_under_pressure,
        )


@dataclass(frozen=True)
class Client:
    """Who is asking, each way we can tell: address, device (the client scope) and contact; "" or None if unknown."""

    channel: str
    ip: str | None
    device: str
    contact: str

    def known(self) -> list[tuple[str, str]]:
        """(kind, value) of each identity known."""
        every = [("ip", self.ip or ""), ("device", self.device), ("contact", self.contact)]
        return [(kind, value) for kind, value in every if value]

    def identities(self) -> list[tuple[str, str, ColumnElement[bool]]]:
        """(kind, value, the condition matching its orders) of each identity known."""
        column = {"ip": Order.buyer_ip, "device": Order.source, "contact": Order.contact}
        return [(kind, value, column[kind] == value) for kind, value in self.known()]


async def serialize_client(db: Database, session: AsyncSession, client: Client) -> None:
    """Let one order at a time of this client count and insert (all in one order of names: no deadlock)."""
    if not db.protect:  # a test's control experiment: show the race without it
        return
    await serialize_on_all(session, sorted(f"unpaid:{client.channel}:{kind}:{value}" for kind, value in client.known()))


async def check_caps(
    session: AsyncSession, policy: HoldPolicy, client: Client, *, quantity: int, new_order: int
) -> None:
    """Refuse the new order if, with it, any identity of the client would hold too many unpaid orders or units.

    Orders past their expiry no longer count, even before the worker sweeps them.
    """
    conditions = [condition for _, _, condition in client.identities()]
    if not conditions:
        return
    now = clock.now()
    columns = []
    for condition in conditions:
        columns += [
            func.count(case((condition, 1))),
            func.coalesce(func.sum(case((condition, Order.quantity))), 0),
            func.min(case((condition, Order.expires_at))),
        ]
    stmt = select(*columns).where(
        _UNPAID,
        Order.channel == client.channel,
        Order.expires_at > now,
        Order.id != new_order,
        or_(*conditions),
    )
    row = (await session.execute(stmt)).one()
    for index in range(len(conditions)):
        orders, units, soonest = int(row[3 * index]), int(row[3 * index + 1]), row[3 * index + 2]
        if orders + 1 > policy.orders_per_client:
            raise TooManyUnpaidOrders("orders", policy.orders_per_client, _seconds_until(soonest, now))
        if units + quantity > policy.units_per_client:
            raise TooManyUnpaidOrders("units", policy.units_per_client, _seconds_until(soonest, now))


async def held_by(session: AsyncSession, client: Client) -> tuple[int, int]:
    """Unpaid orders, and their units, that any identity of the client holds now (a risk feature)."""
    conditions = [condition for _, _, condition in client.identities()]
    if not conditions:
        return 0, 0
    stmt = select(func.count(), func.coalesce(func.sum(Order.quantity), 0)).where(
        _UNPAID, Order.channel == client.channel, Order.expires_at > clock.now(), or_(*conditions)
    )
    orders, units = (await session.execute(stmt)).one()
    return int(orders), int(units)


def _seconds_until(at: datetime | None, now: datetime) -> int:
    """Seconds until the client's first hold lapses (room for the next order), at least 1."""
    if at is None:
        return 1
    return max(1, math.ceil((at - now).total_seconds()))


async def hold_minutes(
    session: AsyncSession, policy: HoldPolicy, sku_id: int, quantity: int, *, normal_minutes: int
) -> int:
    """The normal hold, or the short one when unpaid orders, with this one, would hold more than the
    pressure share of the SKU's sellable stock (held + available).

    Counts available units only as far as the decision needs, so a SKU with a million codes costs
    no more than one with a hundred.
    """
    held = await units_held_unpaid(session, sku_id)
    wanted = held + quantity
    # Pressure when wanted > share × (held + available), i.e. when available < wanted / share − held.
    needed = math.ceil(Fraction(wanted) / Fraction(policy.pressure_share).limit_denominator(10_000) - held)
    available = await available_units(session, sku_id, at_most=needed)
    return min(policy.pressure_hold_minutes, normal_minutes) if available < needed else normal_minutes


async def units_held_unpaid(session: AsyncSession, sku_id: int) -> int:
    """Units of a SKU that unpaid orders of every channel hold (including lapsed ones not yet swept)."""
    stmt = select(func.coalesce(func.sum(Order.quantity), 0)).where(_UNPAID, Order.sku_id == sku_id)
    return int((await session.execute(stmt)).scalar_one())
