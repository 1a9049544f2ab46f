"""The console's order list: recent orders newest first, narrowed by filters, paged by a keyset on the id.

A page is asked for with `before_id` (the last id of the page before), so paging deeper costs
the same as the first page and an order placed meanwhile never shifts a page. Every filter
has its index (`models.Order`): status, channel, SKU and contact each lead an index with the
id, and creation times have their own.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import BadInput
from kaquan.orders.models import ORDER_STATUSES, Order

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
EXPORT_LIMIT = 10_000
_EXPORT_CHUNK = 1000


class UnknownOrderStatus(BadInput):
    code = "unknown_order_status"

    def __init__(self, status: str) -> None:
        super().__init__(f"no order status {status!r}; one of {', '.join(ORDER_STATUSES)}", status=status)


class BadDateRange(BadInput):
    code = "bad_date_range"

    def __init__(self, first: date, last: date) -> None:
        super().__init__(f"the range starts ({first}) after it ends ({last})", first=str(first), last=str(last))


@dataclass(frozen=True)
class OrderFilter:
    """What to narrow the list to; None or empty: no narrowing. Times are UTC, `created_before` exclusive."""

    status: str | None = None
    channel: str | None = None
    sku_id: int | None = None
    contact: str | None = None
    query: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in ORDER_STATUSES:
            raise UnknownOrderStatus(self.status)


def local_days(first: date | None, last: date | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """The merchant's calendar days `first`..`last` (both included) as UTC times [from, before)."""
    if first is not None and last is not None and first > last:
        raise BadDateRange(first, last)
    start = datetime.combine(first, time(), zone).astimezone(UTC) if first is not None else None
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC) if last is not None else None
    return start, end


def _filtered(where: OrderFilter) -> Select[Order]:
    stmt = select(Order)
    if where.status:
        stmt = stmt.where(Order.status == where.status)
    if where.channel:
        stmt = stmt.where(Order.channel == where.channel)
    if where.sku_id is not None:
        stmt = stmt.where(Order.sku_id == where.sku_id)
    if where.contact:
        stmt = stmt.where(func.lower(Order.contact) == where.contact.strip().lower())
    if where.query:
        query = where.query.strip()
        stmt = stmt.where(or_(Order.number == query, func.lower(Order.contact) == query.lower()))
    if where.created_from is not None:
        stmt = stmt.where(Order.created_at >= where.created_from)
    if where.created_before is not None:
        stmt = stmt.where(Order.created_at < where.created_before)
    return stmt


async def recent(
    session: AsyncSession, where: OrderFilter, *, before_id: int | None = None, limit: int = PAGE_SIZE
) -> list[Order]:
    """Orders matching `where`, newest first, older than `before_id` when given; at most `MAX_PAGE_SIZE`."""
    stmt = _filtered(where)
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    stmt = stmt.order_by(Order.id.desc()).limit(max(1, min(limit, MAX_PAGE_SIZE)))
    return list((await session.execute(stmt)).scalars())


async def for_export(session: AsyncSession, where: OrderFilter, *, limit: int = EXPORT_LIMIT) -> AsyncIterator[Order]:
    """The newest `limit` orders matching `where`, newest first, read a chunk at a time."""
    before_id: int | None = None
    left = limit
    while left > 0:
        stmt = _filtered(where)
        if before_id is not None:
            stmt = stmt.where(Order.id < before_id)
        chunk = list((await session.execute(stmt.order_by(Order.id.desc()).limit(min(left, _EXPORT_CHUNK)))).scalars())
        for order in chunk:
            yield order
        if len(chunk) < min(left, _EXPORT_CHUNK):
            return
        left -= len(chunk)
        before_id = chunk[-1].id


async def channels_in_use(session: AsyncSession) -> list[str]:
    """Every channel some order came through, for the list's channel choice."""
    rows = await session.execute(select(Order.channel).distinct().order_by(Order.channel))
    return list(rows.scalars())
