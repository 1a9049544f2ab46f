"""Placing, paying, expiring and looking up orders.

Prices are computed here from the SKU, never taken from the caller. An order is
created under a caller-chosen idempotency key, scoped to the client that chose
it: the order's `source` is a keyed hash of the client's own token (a cookie or
an `X-Client-Token` header), so the unique constraint on (key, channel, source)
decides who was first among one client's requests only. A retry by the same
client with the same body gets the first order back, with a different body
`idempotency_conflict`; anyone else using the same key simply has a key of its
own, and learns nothing of the first order, not even that the key was used.

The lookup secret (查单密码) is derived from the order number with a server key,
so it never needs storing and a retried request can be answered with it again.
Every check of a lookup secret goes through `LookupGuard`, which throttles wrong
secrets per client.
"""

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.inventory import (
    DeliveredCode,
    DeliveredRange,
    OutOfStock,
    Vault,
    Viewer,
    allocation,
    codes_of_order,
    ranges_of_order,
)
from kaquan.kit import clock, outbox
from kaquan.kit.crypto import keyed_hash, same_digest
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, IdempotencyConflict, RateLimited
from kaquan.kit.ratelimit import RateLimiter
from kaquan.orders import holds, lifecycle
from kaquan.orders.errors import OrderNotFound, SkuNotForSale, check_quantity
from kaquan.orders.models import ORDER_STATUSES as ORDER_STATUSES
from kaquan.orders.models import Order as Order
from kaquan.orders.models import OrderEvent
from kaquan.risk import reviews

_LOOKUP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


CLIENT_TOKEN_MIN, CLIENT_TOKEN_MAX = 16, 128


@dataclass(frozen=True)
class OrderRequest:
    sku: str | int
    quantity: int
    idempotency_key: str
    # A random value only this client holds (16 to 128 characters): its idempotency keys are its own.
    client_token: str
    channel: str = "shop"
    contact: str = ""
    buyer_ip: str | None = None
    # The contact a signed-in buyer proved (buyers.verify): then it is the order's contact, what the per-contact
    # holds count, and the order appears in that buyer's history.
    buyer_contact: str | None = None
    lang: str = "zh"  # the buyer's language: the language of the order's notices

    @property
    def the_contact(self) -> str:
        return self.buyer_contact or self.contact

    def fingerprint(self, sku_id: int) -> bytes:
        """What makes two requests the same: the resolved SKU (by id or by code alike), quantity, channel, contact."""
        body = {
            "sku": sku_id,
            "quantity": self.quantity,
            "channel": self.channel,
            "contact": self.the_contact,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


async def unpaid_held(session: AsyncSession, keys: "OrderKeys", request: OrderRequest) -> tuple[int, int]:
    """Unpaid orders and units the client of `request` holds now, by its address, device or contact."""
    source = keys.client_scope(request.client_token)
    return await holds.held_by(session, holds.Client(request.channel, request.buyer_ip, source, request.the_contact))


@dataclass(frozen=True)
class Placed:
    order: Order
    lookup_secret: str
    replayed: bool


@dataclass(frozen=True)
class PaymentOutcome:
    """What a confirmed payment did to its order."""

    order: Order
    result: str  # "delivered", "already_settled", "unfulfilled", "held" (for review), "declined" (in review)


class OrderKeys:
    """The server key behind lookup secrets."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def lookup_secret(self, number: str) -> str:
        """16 characters of an alphabet without 0/O and 1/I (80 bits), grouped by four for reading aloud."""
        bits = int.from_bytes(keyed_hash(self._key, f"lookup:{number}")[:10])
        chars = "".join(_LOOKUP_ALPHABET[(bits >> (5 * i)) & 31] for i in range(16))
        return "-".join(chars[i : i + 4] for i in range(0, 16, 4))

    def check(self, number: str, offered: str) -> bool:
        normal = offered.strip().upper().replace(" ", "").replace("-", "")
        expected = self.lookup_secret(number).replace("-", "")
        return same_digest(normal.encode(), expected.encode())

    def client_scope(self, client_token: str) -> str:
        """The idempotency scope (the order's `source`) of a client token: 128 bits of a keyed hash.

        Keyed, so the database never holds a token that could be replayed with a leaked key.
        """
        return "client:" + keyed_hash(self._key, f"client:{client_token}")[:16].hex()


LOOKUP_WINDOW_S = 60


@dataclass(frozen=True)
class LookupGuard:
    """The one way to check a lookup secret: a client (an IP address) gets `per_minute` wrong secrets a
    minute, counted together on every route that checks one (lookup form and API, order page, cancel).

    A right secret does not use up the budget, so a buyer refreshing its order page is never throttled;
    a guesser is refused before its guess is checked once the budget is spent.
    """

    keys: OrderKeys
    limiter: RateLimiter
    per_minute: int

    async def verify(self, number: str, offered: str, *, client: str) -> None:
        """Return if `offered` is the lookup secret of order `number`; else raise `OrderNotFound` (or `RateLimited`)."""
        key = f"lookup:{client}"
        wait = await self.limiter.hit(key, limit=self.per_minute, window_s=LOOKUP_WINDOW_S)
        if wait:
            raise RateLimited(f"too many order lookups; try again in {wait} s", retry_after=wait)
        if not self.keys.check(number, offered):
            raise OrderNotFound()
        await self.limiter.undo(key, window_s=LOOKUP_WINDOW_S)


NUMBER_DRAWS = 5


def new_number() -> str:
    """The date and ten random digits (one draw: numbers are made by the hundred in a group commit)."""
    return clock.now().strftime("%y%m%d") + f"{secrets.randbelow(10**10):010d}"


async def place(
    db: Database,
    session: AsyncSession,
    keys: OrderKeys,
    request: OrderRequest,
    *,
    max_per_order: int,
    hold_minutes: int,
    policy: holds.HoldPolicy | None = None,
) -> Placed:
    """Create an unpaid order holding its codes, or return the order this client already made under this key.

    With a `policy` (the anonymous shop), the order is also bounded per order and per client, and
    its hold is shortened while its SKU is under pressure (see `orders.holds`).
    """
    if not request.idempotency_key or len(request.idempotency_key) > 128:
        raise BadInput("an idempotency key of 1 to 128 characters is required", field="idempotency_key")
    if not CLIENT_TOKEN_MIN <= len(request.client_token) <= CLIENT_TOKEN_MAX:
        raise BadInput(
            f"a client token of {CLIENT_TOKEN_MIN} to {CLIENT_TOKEN_MAX} characters is required", field="client_token"
        )
    sku = await catalog.sku_for_sale(session, request.sku)
    if not sku.active:
        raise SkuNotForSale(f"SKU {sku.code} is not for sale", sku=sku.code)
    policy_cap = policy.max_units_per_order if policy else max_per_order
    check_quantity(request.quantity, sku.max_per_order, max_per_order, policy_cap)
    source = keys.client_scope(request.client_token)
    client = holds.Client(request.channel, request.buyer_ip, source, request.the_contact)
    if policy is not None:
        await holds.serialize_client(db, session, client)
        hold_minutes = await holds.hold_minutes(session, policy, sku.id, request.quantity, normal_minutes=hold_minutes)
    fingerprint = request.fingerprint(sku.id)
    now = clock.now()
    values: dict[str, Any] = {
        "channel": request.channel,
        "source": source,
        "idempotency_key": request.idempotency_key,
        "request_hash": fingerprint,
        "sku_id": sku.id,
        "quantity": request.quantity,
        "unit_price_minor": sku.price_minor,
        "total_minor": sku.price_minor * request.quantity,
        "currency": sku.currency,
        "status": "pending_payment",
        "contact": request.the_contact,
        "buyer_ip": request.buyer_ip,
        "buyer_contact": request.buyer_contact,
        "lang": request.lang,
        "created_at": now,
        "expires_at": now + timedelta(minutes=hold_minutes),
    }
    order = await _insert_numbered(db, session, values)
    if order is None:
        return await _replay(session, keys, values, fingerprint)
    if policy is not None:
        await holds.check_caps(session, policy, client, quantity=request.quantity, new_order=order.id)
    session.add(OrderEvent(order_id=order.id, at=now, from_status=None, to_status="pending_payment"))
    await allocation.reserve(db, session, sku, request.quantity, order_id=order.id, hold_until=order.expires_at)
    return Placed(order, keys.lookup_secret(order.number), replayed=False)


async def _insert_numbered(db: Database, session: AsyncSession, values: dict[str, Any]) -> Order | None:
    """Insert the order under a fresh random number and return it (the row as inserted, one statement);
    None when its idempotency key is taken (a replay).

    A number that is taken already is drawn again (see `batch_placing.place_many`).
    """
    stmt = db.insert(Order).on_conflict_do_nothing().returning(Order)
    for _ in range(NUMBER_DRAWS):
        order: Order | None = (await session.scalars(stmt.values(**values, number=new_number()))).one_or_none()
        if order is not None:
            return order
        taken = await session.execute(select(Order.id).where(*_same_key(values)))
        if taken.first() is not None:
            return None
    raise RuntimeError(f"no free order number after {NUMBER_DRAWS} draws")


def _same_key(values: dict[str, Any]) -> tuple[ColumnElement[bool], ...]:
    """The order already made under this key by this client (its scope) in this channel."""
    return (
        Order.channel == values["channel"],
        Order.source == values["source"],
        Order.idempotency_key == values["idempotency_key"],
    )


async def _replay(session: AsyncSession, keys: OrderKeys, values: dict[str, Any], fingerprint: bytes) -> Placed:
    order = (await session.execute(select(Order).where(*_same_key(values)))).scalar_one()
    if not same_digest(order.request_hash, fingerprint):
        raise IdempotencyConflict(
            "this idempotency key was used for a different request", idempotency_key=order.idempotency_key
        )
    return Placed(order, keys.lookup_secret(order.number), replayed=True)


async def locked(db: Database, session: AsyncSession, order_id: int) -> Order:
    stmt = db.lock(select(Order).where(Order.id == order_id)).execution_options(populate_existing=True)
    order = (await session.execute(stmt)).scalar_one_or_none()
    if order is None:
        raise OrderNotFound()
    return order


async def settle_payment(db: Database, session: AsyncSession, order_id: int) -> PaymentOutcome:
    """Deliver a paid order exactly once: its held codes, or fresh ones if the hold lapsed, or a refund.

    An order risk holds for review is paid and waits (`held`) with its codes reserved; one declined in
    review is not delivered when a late payment arrives (`declined`: the money goes back).
    """
    order = await locked(db, session, order_id)
    if order.status not in lifecycle.UNPAID:
        return PaymentOutcome(order, "already_settled")
    await lifecycle.move(session, order, "paid")
    review = await reviews.status_of(session, order.id)
    if review == "open":
        return PaymentOutcome(order, "held")
    if review in ("declined", "fraud"):
        await allocation.release(session, order.id)
        await lifecycle.move(session, order, "paid_unfulfilled", note="paid after it was declined in risk review")
        return PaymentOutcome(order, "declined")
    return await deliver_paid(db, session, order)


async def deliver_paid(db: Database, session: AsyncSession, order: Order) -> PaymentOutcome:
    """Deliver a locked paid order: its reserved codes, or fresh ones if the hold lapsed; else unfulfilled."""
    sku = await catalog.sku_for_sale(session, order.sku_id)
    if not await allocation.sell_held(session, order.id, quantity=order.quantity, stock_kind=sku.stock_kind):
        try:
            async with session.begin_nested():
                await allocation.sell_now(db, session, sku, order.quantity, order_id=order.id)
        except OutOfStock:
            await lifecycle.move(session, order, "paid_unfulfilled", note="paid after its hold lapsed; sold out")
            await outbox.enqueue(session, "order.unfulfilled", {"order_id": order.id, "number": order.number})
            return PaymentOutcome(order, "unfulfilled")
    await lifecycle.move(session, order, "delivered")
    await outbox.enqueue(session, "order.delivered", {"order_id": order.id, "number": order.number})
    return PaymentOutcome(order, "delivered")


async def decline_held(db: Database, session: AsyncSession, order: Order) -> str:
    """Undo a locked order declined in risk review: an unpaid one is cancelled and a paid one gives its codes
    back and waits for its refund (`paid_unfulfilled`). Returns what became of it: `cancelled`, `to_refund`,
    or `closed` (it had expired or was cancelled already)."""
    if order.status == "pending_payment":
        await allocation.release(session, order.id)
        await lifecycle.move(session, order, "cancelled", note="declined in risk review")
        return "cancelled"
    if order.status == "paid":
        await allocation.release(session, order.id)
        await lifecycle.move(session, order, "paid_unfulfilled", note="declined in risk review")
        return "to_refund"
    return "closed"


async def mark_refunded(db: Database, session: AsyncSession, order_id: int, *, note: str) -> Order:
    order = await locked(db, session, order_id)
    if order.status != "refunded":
        await lifecycle.move(session, order, "refunded", note=note)
    return order


async def cancel(db: Database, session: AsyncSession, order_id: int) -> Order:
    order = await locked(db, session, order_id)
    if order.status == "pending_payment":
        await allocation.release(session, order.id)
        await lifecycle.move(session, order, "cancelled", note="cancelled by the buyer")
    return order


async def expire_due(db: Database, session: AsyncSession, *, limit: int = 200) -> int:
    """Expire unpaid orders past their hold and return their codes to stock; returns how many expired."""
    due = db.claim(
        select(Order)
        .where(Order.status == "pending_payment", Order.expires_at <= clock.now())
        .order_by(Order.expires_at)
        .limit(limit)
    )
    orders = list((await session.execute(due)).scalars())
    for order in orders:
        await allocation.release(session, order.id)
        await lifecycle.move(session, order, "expired", note="not paid in time")
    return len(orders)


async def by_number(session: AsyncSession, number: str) -> Order:
    order = (await session.execute(select(Order).where(Order.number == number))).scalar_one_or_none()
    if order is None:
        raise OrderNotFound()
    return order


async def by_id(session: AsyncSession, order_id: int) -> Order:
    order = await session.get(Order, order_id)
    if order is None:
        raise OrderNotFound()
    return order


@dataclass(frozen=True)
class OrderView:
    order: Order
    codes: list[DeliveredCode]
    ranges: list[DeliveredRange]
    events: list[OrderEvent]


async def view(
    session: AsyncSession, vault: Vault, order: Order, viewer: Viewer, *, with_events: bool = True
) -> OrderView:
    """The order with its delivered codes opened, for its buyer (callers check the lookup secret: `LookupGuard`).

    Needs a write transaction: opening codes records the reveal. `with_events=False` leaves the order's
    status changes unread (`events` empty), for an answer that does not show them.
    """
    codes: list[DeliveredCode] = []
    ranges: list[DeliveredRange] = []
    if order.status == "delivered":
        codes = await codes_of_order(session, vault, order.id, viewer)
        if (await catalog.sku_for_sale(session, order.sku_id)).stock_kind != "codes":
            ranges = await ranges_of_order(session, order.id)
    events = await events_of(session, order.id) if with_events else []
    return OrderView(order, codes, ranges, events)


MAX_SEARCH_RESULTS = 50


async def search(session: AsyncSession, query: str, *, limit: int = MAX_SEARCH_RESULTS) -> list[Order]:
    """Orders whose number is `query` or whose contact is `query` (case-insensitive), newest first."""
    query = query.strip()
    if not query:
        return []
    stmt = (
        select(Order)
        .where(or_(Order.number == query, func.lower(Order.contact) == query.lower()))
        .order_by(Order.id.desc())
        .limit(min(limit, MAX_SEARCH_RESULTS))
    )
    return list((await session.execute(stmt)).scalars())


HISTORY_PAGE = 20


async def history(
    session: AsyncSession, contact: str, *, limit: int = HISTORY_PAGE, before_id: int | None = None
) -> list[Order]:
    """The orders a signed-in buyer placed with this verified contact, newest first (never a guest's order)."""
    stmt = select(Order).where(Order.buyer_contact == contact)
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    stmt = stmt.order_by(Order.id.desc()).limit(max(1, min(limit, MAX_SEARCH_RESULTS)))
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True)
class Sales:
    """Orders delivered in a period, in one currency: how many and for how much (minor units)."""

    currency: str
    orders: int
    revenue_minor: int


async def delivered_between(session: AsyncSession, start: datetime, end: datetime) -> list[Sales]:
    """Orders delivered in [start, end), per currency (a later refund still counts: it was a sale that day)."""
    rows = await session.execute(
        select(Order.currency, func.count(), func.sum(Order.total_minor))
        .where(Order.delivered_at >= start, Order.delivered_at < end)
        .group_by(Order.currency)
        .order_by(Order.currency)
    )
    return [Sales(currency, int(count), int(total or 0)) for currency, count, total in rows]


async def best_sellers(session: AsyncSession, *, limit: int = 8) -> list[tuple[int, int]]:
    """The SKUs that sold the most units, as (sku_id, units), most first (delivered orders, all channels)."""
    units = func.sum(Order.quantity)
    rows = await session.execute(
        select(Order.sku_id, units)
        .where(Order.delivered_at.is_not(None))
        .group_by(Order.sku_id)
        .order_by(units.desc(), Order.sku_id)
        .limit(limit)
    )
    return [(sku_id, int(total)) for sku_id, total in rows]


async def count_delivered(session: AsyncSession, numbers: Sequence[str]) -> int:
    """How many of these orders are delivered (benchmarks' end check)."""
    total = 0
    for first in range(0, len(numbers), 1000):
        stmt = select(func.count()).where(Order.number.in_(numbers[first : first + 1000]), Order.status == "delivered")
        total += (await session.execute(stmt)).scalar_one()
    return total


async def events_of(session: AsyncSession, order_id: int) -> list[OrderEvent]:
    """An order's status changes, oldest first."""
    events = await session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id))
    return list(events.scalars())


LIVE_STATUSES = ("pending_payment", "processing", "paid", "delivered")


async def units_taken(session: AsyncSession, *, channel: str, sku_id: int) -> int:
    """Units of a SKU that a channel's live orders hold or have bought (a channel quota's usage)."""
    total = await session.execute(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.channel == channel, Order.sku_id == sku_id, Order.status.in_(LIVE_STATUSES)
        )
    )
    return int(total.scalar_one())


async def sku_of(session: AsyncSession, order: Order) -> Sku:
    return await catalog.get_sku(session, order.sku_id)


async def by_key(session: AsyncSession, *, channel: str, source: str, key: str) -> Order | None:
    """The order a channel's caller placed under its own idempotency key (an agent's out_order_no, say)."""
    stmt = select(Order).where(Order.channel == channel, Order.source == source, Order.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def keys_of(session: AsyncSession, *, channel: str, source: str, numbers: Iterable[str]) -> dict[str, str]:
    """The caller's idempotency keys of its orders with these numbers (others' orders are left out)."""
    wanted = list(numbers)
    if not wanted:
        return {}
    stmt = select(Order.number, Order.idempotency_key).where(
        Order.channel == channel, Order.source == source, Order.number.in_(wanted)
    )
    return {number: key for number, key in await session.execute(stmt)}


async def by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Order]:
    rows = await session.execute(select(Order).where(Order.id.in_(ids)))
    return {order.id: order for order in rows.scalars()}


async def of_source(
    session: AsyncSession,
    *,
    channel: str,
    source: str,
    since: datetime,
    until: datetime,
    after_id: int | None,
    limit: int,
) -> list[Order]:
    """One caller's orders created in [since, until), oldest first, after the cursor (an order id)."""
    stmt = (
        select(Order)
        .where(Order.channel == channel, Order.source == source, Order.created_at >= since, Order.created_at < until)
        .order_by(Order.id)
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(Order.id > after_id)
    return list((await session.execute(stmt)).scalars())
