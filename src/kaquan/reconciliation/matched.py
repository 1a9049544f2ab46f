"""The pairs matching found in agreement: kept compact (line, record, day), listed with their line's figures.

They are not finance's worklist (nothing to annotate or resolve), but finance
and the tests may still ask which record a line matched. Amount, currency,
fee and status agree by definition, so the line's figures are the pair's.
"""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import BadInput
from kaquan.reconciliation.models import MatchedPair, StatementLineRow


@dataclass(frozen=True)
class MatchedView:
    """A line and the kaquan record it matched; `class_` and `state` as a worklist item would say them."""

    line_id: int
    source: str
    business_day: date
    record_kind: str  # "payment" or "refund"
    record_ref: str  # payment token or refund number
    currency: str
    amount_minor: int
    fee_minor: int
    line_kind: str
    line_no: int
    line_identity: str
    line_merchant_ref: str
    line_counterparty_ref: str
    line_status: str
    line_occurred_at: datetime
    statement_id: int
    class_: str = "matched"
    state: str = "auto"


async def list_matched(
    session: AsyncSession,
    *,
    source: str | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    after_line_id: int = 0,
    limit: int = 100,
) -> list[MatchedView]:
    """Matched pairs by line id (pages: pass the last line id seen as `after_line_id`)."""
    if not 1 <= limit <= 10_000:
        raise BadInput("limit is 1 to 10000", limit=limit)
    m, line = MatchedPair, StatementLineRow
    stmt = (
        select(m, line)
        .join(line, line.id == m.line_id)
        .where(m.line_id > after_line_id)
        .order_by(m.line_id)
        .limit(limit)
    )
    if source is not None:
        stmt = stmt.where(m.source == source)
    if first_day is not None:
        stmt = stmt.where(m.business_day >= first_day)
    if last_day is not None:
        stmt = stmt.where(m.business_day <= last_day)
    return [
        MatchedView(
            line_id=pair.line_id,
            source=pair.source,
            business_day=pair.business_day,
            record_kind=pair.record_kind,
            record_ref=pair.record_ref,
            currency=row.currency,
            amount_minor=row.amount_minor,
            fee_minor=row.fee_minor,
            line_kind=row.kind,
            line_no=row.line_no,
            line_identity=row.identity,
            line_merchant_ref=row.merchant_ref,
            line_counterparty_ref=row.counterparty_ref,
            line_status=row.status,
            line_occurred_at=row.occurred_at,
            statement_id=row.statement_id,
        )
        for pair, row in (await session.execute(stmt)).all()
    ]
