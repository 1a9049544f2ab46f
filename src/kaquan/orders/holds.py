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

import functools
import math
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, func, literal_column, or_, select
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

    def parameters(self, **more: object) -> dict[str, object]:
        """The values of the statements below: the channel and each identity known, by kind."""
        return {"channel": self.channel, **dict(self.known()), **more}


# The statements of the hold rules are built once for each set of identities a client may show (at most
# seven), with the values bound at execution: building SQLAlchemy expressions for every order cost more CPU
# than sending them.
_IDENTITY_COLUMNS = {"ip": Order.buyer_ip, "device": Order.source, "contact": Order.contact}


def _matching(kind: str) -> ColumnElement[bool]:
    """The condition matching the orders of the identity `kind`, its value bound as the parameter `kind`."""
    return _IDENTITY_COLUMNS[kind] == bindparam(kind)


def _kinds(client: Client) -> tuple[str, ...]:
    return tuple(kind for kind, _ in client.known())


@functools.cache
def _caps_statement(kinds: tuple[str, ...]) -> Select[*tuple[Any, ...]]:
    columns = []
    for kind in kinds:
        condition = _matching(kind)
        columns += [
            func.count(case((condition, 1))),
            func.coalesce(func.sum(case((condition, Order.quantity))), 0),
            func.min(case((condition, Order.expires_at))),
        ]
    return select(*columns).where(
        _UNPAID,
        Order.channel == bindparam("channel"),
        Order.expires_at > bindparam("now"),
        Order.id != bindparam("new_order"),
        or_(*(_matching(kind) for kind in kinds)),
    )


@functools.cache
def _held_statement(kinds: tuple[str, ...]) -> Select[*tuple[Any, ...]]:
    return select(func.count(), func.coalesce(func.sum(Order.quantity), 0)).where(
        _UNPAID,
        Order.channel == bindparam("channel"),
        Order.expires_at > bindparam("now"),
        or_(*(_matching(kind) for kind in kinds)),
    )


_UNITS_HELD_UNPAID = select(func.coalesce(func.sum(Order.quantity), 0)).where(_UNPAID, Order.sku_id == bindparam("sku"))


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
    kinds = _kinds(client)
    if not kinds:
        return
    now = clock.now()
    row = (await session.execute(_caps_statement(kinds), client.parameters(now=now, new_order=new_order))).one()
    for index in range(len(kinds)):
        orders, units, soonest = int(row[3 * index]), int(row[3 * index + 1]), row[3 * index + 2]
        if orders + 1 > policy.orders_per_client:
            raise TooManyUnpaidOrders("orders", policy.orders_per_client, _seconds_until(soonest, now))
        if units + quantity > policy.units_per_client:
            raise TooManyUnpaidOrders("units", policy.units_per_client, _seconds_until(soonest, now))


async def held_by(session: AsyncSession, client: Client) -> tuple[int, int]:
    """Unpaid orders, and their units, that any identity of the client holds now (a risk feature)."""
    kinds = _kinds(client)
    if not kinds:
        return 0, 0
    orders, units = (await session.execute(_held_statement(kinds), client.parameters(now=clock.now()))).one()
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
    return int((await session.execute(_UNITS_HELD_UNPAID, {"sku": sku_id})).scalar_one())
