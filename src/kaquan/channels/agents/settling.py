"""An agent's orders as its own statement should show them: delivered (paid from the deposit) and refunded."""

from datetime import datetime

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.agents.accounts import by_code
from kaquan.channels.agents.ordering import CHANNEL, source_of
from kaquan.orders.records import channel_records


async def reconcilable(
    session: AsyncSession, code: str, since: datetime, until: datetime
) -> Select[tuple[object, ...]]:
    """The agent's orders delivered or refunded in [since, until): `ref` its out_order_no, `txn_id` the order number."""
    agent = await by_code(session, code)
    return channel_records(CHANNEL, source_of(agent.id), since, until)
