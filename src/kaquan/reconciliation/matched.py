"""The pairs matching found in agreement, listed with their line's figures: compact rows (line, record, day)
and runs of plain matches (`plain_matches`).

They are not finance's worklist (nothing to annotate or resolve), but finance
and the tests may still ask which record a line matched. Amount, currency,
fee and status agree by definition, so the line's figures are the pair's.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import BadInput
from kaquan.reconciliation.models import MatchedPair, MatchedRun, StatementLineRow


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
    """Matched pairs by line id (pages: pass the last line id seen as `after_line_id`): the compact pairs and
    the lines of the runs of plain matches (whose record is the payment the line's reference names)."""
    if not 1 <= limit <= 10_000:
        raise BadInput("limit is 1 to 10000", limit=limit)
    m, line = MatchedPair, StatementLineRow
    stmt = (
        select(m.line_id, m.source, m.business_day, m.record_kind, m.record_ref, line)
        .join(line, line.id == m.line_id)
        .where(m.line_id > after_line_id)
        .order_by(m.line_id)
        .limit(limit)
    )
    runs = select(MatchedRun).where(MatchedRun.last_line_id > after_line_id).order_by(MatchedRun.first_line_id)
    if source is not None:
        stmt = stmt.where(m.source == source)
        runs = runs.where(MatchedRun.source == source)
    if first_day is not None:
        stmt = stmt.where(m.business_day >= first_day)
        runs = runs.where(MatchedRun.business_day >= first_day)
    if last_day is not None:
        stmt = stmt.where(m.business_day <= last_day)
        runs = runs.where(MatchedRun.business_day <= last_day)
    found = [_view(*row) for row in (await session.execute(stmt)).all()]
    found += await _lines_of_runs(session, (await session.scalars(runs)).all(), after_line_id, limit)
    found.sort(key=lambda view: view.line_id)
    return found[:limit]


async def _lines_of_runs(
    session: AsyncSession, runs: Sequence[MatchedRun], after_line_id: int, limit: int
) -> list[MatchedView]:
    """The first `limit` lines after `after_line_id` of `runs` (by first line id): runs of several days or
    sources may interleave, so the runs are read until the next one starts past the `limit`-th line found."""
    line = StatementLineRow
    found: list[MatchedView] = []
    for run in runs:
        if len(found) >= limit and found[limit - 1].line_id < run.first_line_id:
            break
        stmt = (
            select(line)
            .where(
                line.source == run.source,
                line.business_day == run.business_day,
                line.id.between(max(run.first_line_id, after_line_id + 1), run.last_line_id),
            )
            .order_by(line.id)
            .limit(limit)
        )
        found += [
            _view(row.id, run.source, run.business_day, "payment", row.merchant_ref, row)
            for row in (await session.scalars(stmt)).all()
        ]
        found.sort(key=lambda view: view.line_id)
    return found[:limit]


def _view(
    line_id: int, source: str, business_day: date, record_kind: str, record_ref: str, row: StatementLineRow
) -> MatchedView:
    return MatchedView(
        line_id=line_id,
        source=source,
        business_day=business_day,
        record_kind=record_kind,
        record_ref=record_ref,
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
