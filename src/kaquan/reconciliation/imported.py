"""The statements imported so far, newest first, as finance lists them."""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import BadInput
from kaquan.reconciliation.models import StatementImport


@dataclass(frozen=True)
class StatementView:
    id: int
    source: str
    account: str
    period_start: date | None
    period_end: date | None
    filename: str
    currency: str
    lines_read: int
    lines_new: int
    lines_known: int
    lines_repeated: int
    imported_by: str
    imported_at: datetime


def _view(row: StatementImport) -> StatementView:
    return StatementView(
        row.id,
        row.source,
        row.account,
        row.period_start,
        row.period_end,
        row.filename,
        row.currency,
        row.lines_read,
        row.lines_new,
        row.lines_known,
        row.lines_repeated,
        row.imported_by,
        row.imported_at,
    )


async def list_statements(
    session: AsyncSession, *, source: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[StatementView]:
    """Imported statements, newest first; page with the last id seen as `before_id`."""
    if not 1 <= limit <= 500:
        raise BadInput("limit is 1 to 500", limit=limit)
    stmt = select(StatementImport).order_by(StatementImport.id.desc()).limit(limit)
    if source is not None:
        stmt = stmt.where(StatementImport.source == source)
    if before_id is not None:
        stmt = stmt.where(StatementImport.id < before_id)
    return [_view(row) for row in (await session.execute(stmt)).scalars()]
