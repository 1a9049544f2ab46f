"""What staff do to an order from the console besides after sale: cancel an unpaid one, write a note.

Both are audited. A cancel releases the codes the order held, as the buyer's own cancel does;
a payment that still arrives for it later is a late payment, handled as for an expired order
(delivered from fresh stock, or refunded). Notes are for staff only: the buyer's order page
shows the order's events, never its notes.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.inventory import allocation
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict
from kaquan.orders import lifecycle
from kaquan.orders.models import Order, OrderEvent, OrderNote
from kaquan.orders.service import by_number, events_of, locked

MAX_NOTE = 1000
MAX_REASON = 300


class NotUnpaid(Conflict):
    code = "order_not_unpaid"

    def __init__(self, order: Order) -> None:
        super().__init__(
            f"order {order.number} is {order.status}: only an order awaiting payment can be cancelled",
            number=order.number,
            status=order.status,
        )


def _required(text: str, what: str, maximum: int) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise BadInput(f"a {what} is required", field=what)
    if len(cleaned) > maximum:
        raise BadInput(f"the {what} is longer than {maximum} characters", field=what, max=maximum)
    return cleaned


async def cancel_unpaid(
    db: Database, session: AsyncSession, number: str, *, actor: str, reason: str, ip: str | None = None
) -> Order:
    """Cancel an order awaiting payment and release its hold, in the caller's transaction."""
    why = _required(reason, "reason", MAX_REASON)
    order = await locked(db, session, (await by_number(session, number)).id)
    if order.status != "pending_payment":
        raise NotUnpaid(order)
    released = await allocation.release(session, order.id)
    await lifecycle.move(session, order, "cancelled", note=f"cancelled by {actor}: {why}")
    await audit.record(
        session,
        actor,
        "order.cancelled",
        target=f"order:{order.number}",
        before={"status": "pending_payment"},
        after={"status": "cancelled", "reason": why, "released": released},
        ip=ip,
    )
    return order


@dataclass(frozen=True)
class Note:
    at: datetime
    author: str
    body: str


async def add_note(session: AsyncSession, number: str, body: str, *, actor: str, ip: str | None = None) -> Note:
    """Write a staff note on an order, in the caller's transaction."""
    text = _required(body, "note", MAX_NOTE)
    order = await by_number(session, number)
    note = OrderNote(order_id=order.id, at=clock.now(), author=actor, body=text)
    session.add(note)
    await audit.record(
        session, actor, "order.note_added", target=f"order:{order.number}", after={"length": len(text)}, ip=ip
    )
    return Note(note.at, note.author, note.body)


async def notes_of(session: AsyncSession, order_id: int) -> list[Note]:
    """An order's staff notes, oldest first."""
    rows = await session.execute(select(OrderNote).where(OrderNote.order_id == order_id).order_by(OrderNote.id))
    return [Note(row.at, row.author, row.body) for row in rows.scalars()]


async def timeline(session: AsyncSession, order_id: int) -> list[OrderEvent | Note]:
    """What support reads on the order's page: its status changes and staff notes, oldest first."""
    entries: list[OrderEvent | Note] = [*await events_of(session, order_id), *await notes_of(session, order_id)]
    return sorted(entries, key=lambda entry: entry.at)
