"""What the codes an order was given cost us: the unit cost of each code's batch (a segment's serials: its batch's).

Every unit handed to an order counts, whatever became of it since: sold, redeemed,
or voided by a refund (a code once handed out never returns to stock, so its cost
is spent for good). Units an order only reserved are not its cost.
"""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.models import Batch, Code, Segment, SegmentRange

HANDED_OUT = ("sold", "redeemed", "voided")
_CHUNK = 500


async def cost_of_orders(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Each order's cost of goods by currency (the batch's), in minor units; orders given nothing are absent.

    A batch without a cost (unit cost 0) adds nothing, so an order of free stock
    is absent too.
    """
    costs: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for start in range(0, len(order_ids), _CHUNK):
        chunk = list(order_ids[start : start + _CHUNK])
        codes = (
            select(Code.order_id, Batch.currency, func.sum(Batch.unit_cost_minor))
            .join(Batch, Batch.id == Code.batch_id)
            .where(Code.order_id.in_(chunk), Code.status.in_(HANDED_OUT), Batch.unit_cost_minor > 0)
            .group_by(Code.order_id, Batch.currency)
        )
        units = SegmentRange.last_serial - SegmentRange.first_serial + 1
        serials = (
            select(SegmentRange.order_id, Batch.currency, func.sum(units * Batch.unit_cost_minor))
            .join(Segment, Segment.id == SegmentRange.segment_id)
            .join(Batch, Batch.id == Segment.batch_id)
            .where(SegmentRange.order_id.in_(chunk), SegmentRange.status.in_(HANDED_OUT), Batch.unit_cost_minor > 0)
            .group_by(SegmentRange.order_id, Batch.currency)
        )
        for order_id, currency, total in await session.execute(union_all(codes, serials)):
            if order_id is not None:
                costs[order_id][currency] += int(total)
    return {order_id: dict(by_currency) for order_id, by_currency in costs.items()}


async def cost_of_order(session: AsyncSession, order_id: int) -> dict[str, int]:
    """One order's cost of goods by currency ({} when its units cost nothing or it was given none)."""
    return (await cost_of_orders(session, [order_id])).get(order_id, {})
