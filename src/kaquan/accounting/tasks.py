"""Outbox handlers of the accounting module: the cost of goods of the channels' deliveries."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.accounting.booking import COST_OF_GOODS_TOPIC, book_deliveries
from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.orders import service as orders


@outbox.handler(COST_OF_GOODS_TOPIC)
async def book_cost_of_goods(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    """Book the orders' cost of goods (`cogs:<order number>`); orders booked before are left as they are.

    Two runners booking one order at once (two events naming it): the second's insert meets the first's
    reference, its event fails and is run again after the backoff, when it finds the order booked.
    """
    ids = [int(order_id) for order_id in payload["order_ids"]]
    found = await orders.by_ids(session, ids)
    await book_deliveries(db, session, [found[order_id] for order_id in ids if order_id in found], actor="worker")
