"""Placing many orders of one SKU in one transaction (group commit).

The batch costs a handful of statements whatever its size: one SELECT finds
keys already used, one claim locks every code the batch needs, one INSERT
(ON CONFLICT DO NOTHING … RETURNING) creates the orders, one UPDATE per chunk
hands the codes out, one INSERT records the order events. Orders are filled in
the order given; an order that cannot be filled (down to its `min_quantity`)
is not created. Keys already used answer "replayed" (same request) or
"conflict" (a different one) and are never charged twice.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog.service import Sku
from kaquan.inventory import handouts
from kaquan.kit import clock
from kaquan.kit.crypto import same_digest
from kaquan.kit.db import Database, insert_rows
from kaquan.kit.errors import BadInput
from kaquan.orders.models import Order, OrderEvent
from kaquan.orders.service import NUMBER_DRAWS, new_number

Outcome = Literal["placed", "replayed", "out_of_stock", "conflict"]
BulkStatus = Literal["pending_payment", "delivered", "processing"]


@dataclass(frozen=True)
class BulkOrder:
    idempotency_key: str
    quantity: int
    request_hash: bytes
    contact: str = ""
    buyer_ip: str | None = None
    # The contact a signed-in buyer proved (as `OrderRequest.buyer_contact`): the order is in that buyer's history.
    buyer_contact: str | None = None
    # The least the caller accepts when stock is short (a partial fill); None: all or nothing.
    min_quantity: int | None = None
    # What the caller asked for, when `quantity` was already cut down (to what a balance covers, say).
    requested: int | None = None


@dataclass(frozen=True)
class BulkPlaced:
    idempotency_key: str
    outcome: Outcome
    order_id: int | None = None
    number: str | None = None
    status: str | None = None
    quantity: int = 0
    code_ids: tuple[int, ...] = ()
    expires_at: datetime | None = None  # a placed order's: an unpaid one's hold ends then


@dataclass(frozen=True)
class KnownOrder:
    """An order already placed under an idempotency key: enough to answer a retry."""

    order_id: int
    number: str
    status: str
    quantity: int
    request_hash: bytes


async def place_many(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    orders: Sequence[BulkOrder],
    *,
    channel: str,
    source: str = "",
    unit_price_minor: int,
    currency: str,
    status: BulkStatus,
    hold_minutes: int = 15,
    from_holder: int | None = None,
    warehouses: Sequence[int] | None = None,
    known: Mapping[str, KnownOrder] | None = None,
) -> list[BulkPlaced]:
    """Place `orders` (one answer each, in order). "processing" orders get their codes later, from the worker."""
    if sku.stock_kind != "codes":
        raise BadInput("batched orders take unique codes only", sku=sku.code)
    answers: dict[int, BulkPlaced] = {}
    if known is None:  # the caller may have looked its keys up already (to leave retries out of its sums)
        known = await known_keys(session, channel, source, [o.idempotency_key for o in orders])
    fresh: list[tuple[int, BulkOrder]] = []
    first_index: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for index, order in enumerate(orders):
        earlier = known.get(order.idempotency_key)
        if earlier is not None:
            answers[index] = _replayed(order, earlier)
        elif order.idempotency_key in first_index:
            repeats.append((index, first_index[order.idempotency_key]))
        else:
            first_index[order.idempotency_key] = index
            fresh.append((index, order))
    fills = await _fill(db, session, sku, fresh, status, from_holder, warehouses)
    placed = await _insert(db, session, sku, fills, channel, source, unit_price_minor, currency, status, hold_minutes)
    given = [handouts.Handout(p.order_id, p.code_ids) for p in placed.values() if p.order_id and p.code_ids]
    if given:
        await handouts.hand_out(
            session,
            given,
            source="reserved" if from_holder is not None else "available",
            target="reserved" if status == "pending_payment" else "sold",
            hold_until=clock.now() + timedelta(minutes=hold_minutes) if status == "pending_payment" else None,
        )
    for index, order in fresh:
        answers[index] = placed.get(index) or BulkPlaced(order.idempotency_key, "out_of_stock")
    await _answer_lost_races(session, channel, source, orders, answers)
    for index, first in repeats:
        answers[index] = _repeat(orders[index], orders[first], answers[first])
    return [answers[index] for index in range(len(orders))]


async def known_keys(session: AsyncSession, channel: str, source: str, keys: Sequence[str]) -> dict[str, KnownOrder]:
    rows = await session.execute(
        select(Order.idempotency_key, Order.id, Order.number, Order.status, Order.quantity, Order.request_hash).where(
            Order.channel == channel, Order.source == source, Order.idempotency_key.in_(set(keys))
        )
    )
    return {
        row.idempotency_key: KnownOrder(row.id, row.number, row.status, row.quantity, row.request_hash) for row in rows
    }


def _replayed(order: BulkOrder, earlier: KnownOrder) -> BulkPlaced:
    if not same_digest(earlier.request_hash, order.request_hash):
        return BulkPlaced(order.idempotency_key, "conflict", earlier.order_id, earlier.number, earlier.status)
    return BulkPlaced(
        order.idempotency_key, "replayed", earlier.order_id, earlier.number, earlier.status, earlier.quantity
    )


def _repeat(order: BulkOrder, first: BulkOrder, answer: BulkPlaced) -> BulkPlaced:
    """A key sent twice in one batch: the later copy is answered like a retry of the first."""
    if not same_digest(first.request_hash, order.request_hash):
        return BulkPlaced(order.idempotency_key, "conflict", answer.order_id, answer.number, answer.status)
    if answer.outcome == "placed":
        return BulkPlaced(
            order.idempotency_key, "replayed", answer.order_id, answer.number, answer.status, answer.quantity
        )
    return answer


@dataclass(frozen=True)
class _Fill:
    index: int
    order: BulkOrder
    quantity: int
    code_ids: tuple[int, ...]


async def _fill(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    fresh: list[tuple[int, BulkOrder]],
    status: BulkStatus,
    from_holder: int | None,
    warehouses: Sequence[int] | None,
) -> list[_Fill]:
    """Claim the codes for the whole batch and share them out in order; unfillable orders drop out."""
    if status == "processing":
        return [_Fill(index, order, order.quantity, ()) for index, order in fresh]
    needed = sum(order.quantity for _, order in fresh)
    if not needed:
        return []
    if from_holder is not None:
        claimed = await handouts.claim_held(db, session, from_holder, needed)
    else:
        claimed = await handouts.claim_available(db, session, sku.id, needed, warehouses=warehouses)
    fills: list[_Fill] = []
    taken = 0
    for index, order in fresh:
        left = len(claimed) - taken
        quantity = order.quantity if left >= order.quantity else left
        if quantity < (order.min_quantity or order.quantity) or quantity == 0:
            continue
        fills.append(_Fill(index, order, quantity, tuple(claimed[taken : taken + quantity])))
        taken += quantity
    return fills


async def _insert(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    fills: list[_Fill],
    channel: str,
    source: str,
    unit_price_minor: int,
    currency: str,
    status: BulkStatus,
    hold_minutes: int,
) -> dict[int, BulkPlaced]:
    if not fills:
        return {}
    now = clock.now()
    expires_at = now + timedelta(minutes=hold_minutes)
    rows = {
        fill.order.idempotency_key: {
            "channel": channel,
            "source": source,
            "idempotency_key": fill.order.idempotency_key,
            "request_hash": fill.order.request_hash,
            "sku_id": sku.id,
            "quantity": fill.quantity,
            "requested_quantity": _requested(fill),
            "unit_price_minor": unit_price_minor,
            "total_minor": unit_price_minor * fill.quantity,
            "currency": currency,
            "status": status,
            "contact": fill.order.contact,
            "buyer_ip": fill.order.buyer_ip,
            "buyer_contact": fill.order.buyer_contact,
            "created_at": now,
            "expires_at": expires_at,
            "paid_at": None if status == "pending_payment" else now,
            "delivered_at": now if status == "delivered" else None,
        }
        for fill in fills
    }
    inserted = await _insert_numbered(db, session, channel, source, rows)
    placed: dict[int, BulkPlaced] = {}
    events: list[dict[str, Any]] = []
    for fill in fills:
        found = inserted.get(fill.order.idempotency_key)
        if found is None:
            continue  # a concurrent batch took this key first: answered as a replay below
        order_id, number = found
        placed[fill.index] = BulkPlaced(
            fill.order.idempotency_key,
            "placed",
            order_id,
            number,
            status,
            fill.quantity,
            fill.code_ids,
            expires_at,
        )
        events.append({"order_id": order_id, "at": now, "from_status": None, "to_status": status, "note": ""})
    if events:
        await insert_rows(session, OrderEvent.__table__, events)  # type: ignore[arg-type]
    return placed


async def _insert_numbered(
    db: Database, session: AsyncSession, channel: str, source: str, rows: dict[str, dict[str, Any]]
) -> dict[str, tuple[int, str]]:
    """Insert the orders (by key) under fresh random numbers; returns id and number of each one inserted.

    A key a concurrent batch took first is left out (its caller answers it as a
    replay). A random number that is taken already (ten random digits a day
    collide now and then once a day has many orders) is drawn again for that
    order alone. Rows go in key order, so that two batches sharing keys lock
    them in the same order and never deadlock.
    """
    stmt = (
        db.insert(Order.__table__)  # type: ignore[arg-type]
        .on_conflict_do_nothing()
        .returning(Order.__table__.c.id, Order.__table__.c.idempotency_key, Order.__table__.c.number)
    )
    inserted: dict[str, tuple[int, str]] = {}
    pending = sorted(rows)
    for _ in range(NUMBER_DRAWS):
        numbered = [rows[key] | {"number": new_number()} for key in pending]
        inserted.update({row.idempotency_key: (row.id, row.number) for row in await session.execute(stmt, numbered)})
        missing = [key for key in pending if key not in inserted]
        if not missing:
            return inserted
        taken = await known_keys(session, channel, source, missing)
        pending = [key for key in missing if key not in taken]
        if not pending:
            return inserted
    raise RuntimeError(f"no free order number for {len(pending)} order(s) after {NUMBER_DRAWS} draws")


def _requested(fill: _Fill) -> int | None:
    asked = fill.order.requested or fill.order.quantity
    return asked if asked != fill.quantity else None


async def _answer_lost_races(
    session: AsyncSession, channel: str, source: str, orders: Sequence[BulkOrder], answers: dict[int, BulkPlaced]
) -> None:
    """Keys another transaction inserted between our look-up and our insert: answer them as retries."""
    lost = [i for i, a in answers.items() if a.outcome == "out_of_stock" and a.order_id is None]
    if not lost:
        return
    known = await known_keys(session, channel, source, [orders[i].idempotency_key for i in lost])
    for index in lost:
        earlier = known.get(orders[index].idempotency_key)
        if earlier is not None:
            answers[index] = _replayed(orders[index], earlier)
