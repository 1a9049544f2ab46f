"""After-sale refunds of marketplace orders: the marketplace gives its buyer the money back, we give up the sale.

The marketplace collected the buyer's money and owes it to us (the receivable
`booking.channel_sale` booked), so no gateway is involved: the refund reverses
that booking, with the fee booked for the order, and the marketplace then owes
us that much less. The codes are voided for good and the order becomes
refunded (`agents.refunds.take_back`, shared with agent refunds); refused whole when a
code of the order was redeemed. A marketplace refund is always of the whole
order: the buyer's partial refunds are the marketplace's own business.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.audit import service as audit
from kaquan.channels import booking
from kaquan.channels import pricing as channels
from kaquan.channels.agents import refunds as agent_refunds
from kaquan.channels.marketplace import stores
from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput
from kaquan.orders import service as orders
from kaquan.orders.service import Order


def is_marketplace(order: Order) -> bool:
    return order.channel.startswith(stores.CHANNEL_PREFIX)


async def refund_order(db: Database, session: AsyncSession, order_id: int, *, reason: str, actor: str) -> Order:
    """Refund a delivered marketplace order in full, in the caller's transaction, under the order's row lock."""
    reason = reason.strip()
    if not reason or len(reason) > agent_refunds.MAX_REASON:
        raise BadInput(f"a refund needs a reason of 1-{agent_refunds.MAX_REASON} characters", field="reason")
    order = await orders.locked(db, session, order_id)
    if not is_marketplace(order):
        raise BadInput(f"order {order.number} was not sold through a marketplace", channel=order.channel)
    store = order.channel.removeprefix(stores.CHANNEL_PREFIX)
    await agent_refunds.take_back(db, session, order, label=order.number, reason=reason)
    fee = 0
    if order.total_minor:  # a free order gives nothing back
        channel = await channels.get_channel(session, order.channel)
        fee = await stores.booked_fee(session, channel.code, order)
        spec = await booking.channel_refund(db, session, channel, order.number, order.total_minor, fee, order.currency)
        await ledger.post(db, session, spec, actor=actor)
    await outbox.enqueue(
        session,
        agent_refunds.REFUNDED_TOPIC,
        {
            "order_id": order.id,
            "number": order.number,
            "refund_no": None,
            "amount_minor": order.total_minor,
            "currency": order.currency,
            "channel": order.channel,
        },
    )
    await audit.record(
        session,
        actor,
        "marketplace_order.refunded",
        target=f"order:{order.number}",
        before={"status": "delivered"},
        after={
            "status": "refunded",
            "store": store,
            "marketplace_order_id": order.idempotency_key,
            "units_voided": order.quantity,
            "amount_minor": order.total_minor,
            "fee_back_minor": fee,
            "currency": order.currency,
            "reason": reason,
        },
    )
    return order
