"""A store's orders as its settlement export should show them, and the account its payouts clear.

Reconciliation matches a store's settlement export against `reconcilable`: the
store's orders delivered (a payment of the order's total, with the
marketplace's commission at the store's fee rate, rounded down as the sale was
booked) and refunded (the total back, with the commission). A payout the
marketplace makes clears `receivable:marketplace:<store>:<cur>`, the account the
store's sales were booked to (`booking.channel_sale`).
"""

from datetime import datetime

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.marketplace.stores import get_store
from kaquan.orders.records import channel_records


async def reconcilable(
    session: AsyncSession, store: str, since: datetime, until: datetime
) -> Select[tuple[object, ...]]:
    """The store's orders delivered or refunded in [since, until), as `orders.records.channel_records` rows."""
    channel = await get_store(session, store)
    return channel_records(channel.code, store, since, until, fee_rate_bp=channel.fee_rate_bp)


def receivable_code(store: str, currency: str) -> str:
    """What the marketplace owes for the store's sales (the account `booking.channel_sale` books to)."""
    return f"receivable:marketplace:{store}:{currency}"
