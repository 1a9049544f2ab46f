"""After-sale refunds of delivered agent orders (a supplier's code turned out invalid, say).

The order's codes are voided for good (a code once handed out never returns to
stock), the order becomes refunded, its price goes back to the agent's deposit,
the agent's callback URL hears `order.refunded`, and the audit trail records who
did it and why. All of it in the caller's transaction, under the order's row
lock: of two refunds at once, the second finds the order refunded and moves
nothing. A refund is refused whole when any code of the order was redeemed.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import inventory, ledger
from kaquan.audit import service as audit
from kaquan.channels import booking, schemas
from kaquan.channels.agents import accounts, ordering
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.errors import OrderNotRefundable
from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput
from kaquan.orders import lifecycle
from kaquan.orders import service as orders
from kaquan.orders.service import Order

MAX_REASON = 300
REFUNDED_TOPIC = "order.refunded"  # the buyer's notice, as payments sends it for gateway refunds


@dataclass(frozen=True)
class Refund:
    """The order after the call; `refunded` is False when it had been refunded before (nothing moved)."""

    order: Order
    refunded: bool


async def refund_delivered(
    db: Database, session: AsyncSession, *, agent_id: int, out_order_no: str, reason: str, actor: str
) -> Refund:
    """Refund a delivered agent order in full: codes voided, price credited back; a refunded one is left as it is."""
    if not reason.strip() or len(reason) > MAX_REASON:
        raise BadInput(f"a refund needs a reason of 1-{MAX_REASON} characters", field="reason")
    agent = await accounts.get_agent(session, agent_id)
    order = await orders.locked(db, session, (await ordering.find(session, agent, out_order_no)).id)
    if order.status == "refunded":
        return Refund(order, refunded=False)
    await take_back(db, session, order, label=out_order_no, reason=reason)
    if order.total_minor:  # a free order gives nothing back
        refund = await booking.refund(db, session, agent, order.number, order.total_minor)
        await ledger.post(db, session, refund, actor=actor)
    await outbox.enqueue(
        session,
        REFUNDED_TOPIC,
        {
            "order_id": order.id,
            "number": order.number,
            "refund_no": None,
            "amount_minor": order.total_minor,
            "currency": order.currency,
            "channel": order.channel,
        },
    )
    sku = await orders.sku_of(session, order)
    await callbacks.notify(
        session, agent_id=agent.id, event_type="order.refunded", data=schemas.order_event_data(order, sku.code)
    )
    await audit.record(
        session,
        actor,
        "agent_order.refunded",
        target=f"order:{order.number}",
        before={"status": "delivered"},
        after={
            "status": "refunded",
            "agent": agent.code,
            "out_order_no": out_order_no,
            "units_voided": order.quantity,
            "amount_minor": order.total_minor,
            "currency": order.currency,
            "reason": reason,
        },
    )
    return Refund(order, refunded=True)


async def take_back(db: Database, session: AsyncSession, order: Order, *, label: str, reason: str) -> None:
    """What every ledger-only refund (agent, marketplace) does to a locked delivered order: its codes voided for
    good and the order refunded; refused whole when it is not delivered or a code of it was redeemed."""
    if order.status != "delivered":
        why = f"it is {order.status}; only a delivered order is refunded"
        raise OrderNotRefundable(label, why, status=order.status)
    if (await inventory.locked_code_states(db, session, order.id))["redeemed"]:
        raise OrderNotRefundable(label, "a code of it was redeemed already", status=order.status)
    await inventory.void_sold_codes(session, order.id, quantity=order.quantity)
    await lifecycle.move(session, order, "refunded", note=reason)
