"""Committing a batch of admitted purchases of one event in one transaction (group commit).

The gate only filters. Here the database decides, with the event row locked so
batches of one event (from any process) commit one after the other: the event
must still be open, a request already committed is answered with its order
(never bought twice), each buyer's, address's and device's units won so far
come from purchase rows (the limits hold even if the gate forgot), and the codes come from
what the event holds (`place_many(from_holder=…)`), so nothing beyond the
allotment can ever be sold.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.flashsale import service
from kaquan.flashsale.models import Event, Purchase
from kaquan.inventory import allocation
from kaquan.kit import clock
from kaquan.kit.db import Database, insert_rows
from kaquan.orders import batch_placing
from kaquan.orders import service as orders
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway

Outcome = Literal["won", "replayed", "sold_out", "limit_reached", "closed", "conflict"]


@dataclass(frozen=True)
class Admitted:
    """A purchase the gate let through, waiting for its batch."""

    event_id: int
    buyer: str  # normalized (keys.normal_buyer)
    key: str  # keys.purchase_key: the gate's request id, the purchase key and the order's idempotency key
    quantity: int
    channel: str
    buyer_ip: str | None = None
    ip_tag: str | None = None  # keys.ip_tag of buyer_ip: counted against the event's per-address limit
    device_tag: str | None = None  # keys.device_tag of the client's device token: the per-device limit
    verified: bool = False  # `buyer` is a contact the buyer proved (a buyer token): the order's buyer_contact


@dataclass(frozen=True)
class Committed:
    """What the database made of one admitted purchase; the order facts are set for `won` and `replayed`."""

    outcome: Outcome
    order_id: int | None = None
    order_number: str | None = None
    quantity: int = 0
    total_minor: int = 0
    currency: str = ""
    pay_before: datetime | None = None
    payment_token: str | None = None


@dataclass(frozen=True)
class BatchResult:
    results: list[Committed]
    held_left: int | None  # units the event still holds after the batch; None when it was closed


def source_of(event_id: int) -> str:
    """The orders' idempotency scope: one event's keys never meet another's."""
    return f"flash:{event_id}"


def request_hash(item: Admitted) -> bytes:
    body = {"event": item.event_id, "buyer": item.buyer, "quantity": item.quantity}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


async def commit_batch(
    db: Database,
    session: AsyncSession,
    gateway: Gateway,
    event_id: int,
    items: Sequence[Admitted],
    *,
    hold_minutes: int,
) -> BatchResult:
    """Place the orders of one event's admitted purchases; one answer per item, in order."""
    event = await service.locked_event(db, session, event_id)
    if not service.is_open(event, clock.now()):
        return BatchResult([Committed("closed")] * len(items), None)
    answers: dict[int, Committed] = {}
    known = await service.purchases_by_key(session, event_id, {item.key for item in items})
    so_far = await service.units_won(
        session,
        event_id,
        buyers={item.buyer for item in items},
        ips={item.ip_tag for item in items if item.ip_tag},
        devices={item.device_tag for item in items if item.device_tag},
    )
    won, by_ip, by_device = so_far.by_buyer, so_far.by_ip, so_far.by_device
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    fresh: list[int] = []
    for index, item in enumerate(items):
        if item.key in known:
            answers[index] = await _replay(session, known[item.key], item)
        elif item.key in first_of:
            repeats.append((index, first_of[item.key]))
        elif not (
            _fits(won, item.buyer, item.quantity, event.per_buyer_limit)
            and _fits(by_ip, item.ip_tag, item.quantity, event.per_ip_limit)
            and _fits(by_device, item.device_tag, item.quantity, event.per_device_limit)
        ):
            answers[index] = Committed("limit_reached")
        else:
            first_of[item.key] = index
            for counts, holder in ((won, item.buyer), (by_ip, item.ip_tag), (by_device, item.device_tag)):
                if holder:
                    counts[holder] = counts.get(holder, 0) + item.quantity
            fresh.append(index)
    answers |= await _place(db, session, gateway, event, [(i, items[i]) for i in fresh], hold_minutes)
    for index, first in repeats:
        answers[index] = _repeat(items[index], items[first], answers[first])
    held_left = await allocation.held_units(session, event.holder_id, "reserved")
    return BatchResult([answers[index] for index in range(len(items))], held_left)


def _fits(counts: dict[str, int], holder: str | None, quantity: int, limit: int) -> bool:
    return holder is None or counts.get(holder, 0) + quantity <= limit


async def _place(
    db: Database,
    session: AsyncSession,
    gateway: Gateway,
    event: Event,
    fresh: list[tuple[int, Admitted]],
    hold_minutes: int,
) -> dict[int, Committed]:
    answers: dict[int, Committed] = {}
    if not fresh:
        return answers
    sku = await catalog.get_sku(session, event.sku_id)
    by_channel: dict[str, list[tuple[int, Admitted]]] = {}
    for index, item in fresh:
        by_channel.setdefault(item.channel, []).append((index, item))
    now = clock.now()
    for channel, group in by_channel.items():
        placed = await batch_placing.place_many(
            db,
            session,
            sku,
            [
                batch_placing.BulkOrder(
                    item.key,
                    item.quantity,
                    request_hash(item),
                    contact=item.buyer,
                    buyer_ip=item.buyer_ip,
                    buyer_contact=item.buyer if item.verified else None,
                )
                for _, item in group
            ],
            channel=channel,
            source=source_of(event.id),
            unit_price_minor=event.price_minor,
            currency=event.currency,
            status="pending_payment",
            hold_minutes=hold_minutes,
            from_holder=event.holder_id,
            # The purchase rows answered the retries already. An order under a key no purchase row knows
            # (rows edited by hand) meets the insert's conflict instead, and is answered as a conflict below.
            known={},
        )
        winners: list[tuple[int, Admitted, batch_placing.BulkPlaced]] = []
        for (index, item), answer in zip(group, placed, strict=True):
            if answer.outcome == "placed":
                winners.append((index, item, answer))
            elif answer.outcome == "out_of_stock":
                answers[index] = Committed("sold_out")
            else:  # the orders know this key but no purchase row does (rows edited by hand): never sell twice
                answers[index] = Committed("conflict")
        answers |= await _record(session, gateway, event, winners, now)
    return answers


async def _record(
    session: AsyncSession,
    gateway: Gateway,
    event: Event,
    winners: list[tuple[int, Admitted, batch_placing.BulkPlaced]],
    now: datetime,
) -> dict[int, Committed]:
    """The purchase rows and the payments the buyers pay through, for the whole batch in two statements."""
    if not winners:
        return {}
    won: list[tuple[int, Admitted, int, str, datetime | None]] = []
    for index, item, placed in winners:
        if placed.order_id is None or placed.number is None:
            raise RuntimeError("a placed order without its id and number")
        won.append((index, item, placed.order_id, placed.number, placed.expires_at))
    await insert_rows(
        session,
        Purchase.__table__,  # type: ignore[arg-type]
        [
            {
                "event_id": event.id,
                "key": item.key,
                "buyer": item.buyer,
                "quantity": item.quantity,
                "order_id": order_id,
                "order_number": number,
                "ip_tag": item.ip_tag,
                "device_tag": item.device_tag,
                "created_at": now,
            }
            for _, item, order_id, number, _ in won
        ],
    )
    dues = [
        payments.Due(order_id, event.price_minor * item.quantity, event.currency) for _, item, order_id, _, _ in won
    ]
    tokens = await payments.start_many(session, gateway, dues)
    return {
        index: Committed("won", order_id, number, item.quantity, due.amount_minor, due.currency, expires_at, token)
        for (index, item, order_id, number, expires_at), due, token in zip(won, dues, tokens, strict=True)
    }


async def _replay(session: AsyncSession, purchase: Purchase, item: Admitted) -> Committed:
    if purchase.quantity != item.quantity or purchase.buyer != item.buyer:
        return Committed("conflict")
    return await order_of(session, purchase)


async def order_of(session: AsyncSession, purchase: Purchase) -> Committed:
    """A purchase committed earlier, answered again (a retried request, a ticket poll)."""
    order = await orders.by_id(session, purchase.order_id)
    payment = await payments.latest_for_order(session, order.id)
    return Committed(
        "replayed",
        order.id,
        order.number,
        order.quantity,
        order.total_minor,
        order.currency,
        order.expires_at,
        payment.token if payment is not None else None,
    )


def _repeat(item: Admitted, first: Admitted, answer: Committed) -> Committed:
    """The same request twice in one batch: the later copy is answered like a retry of the first."""
    if item.quantity != first.quantity:
        return Committed("conflict")
    return replace(answer, outcome="replayed") if answer.outcome == "won" else answer
