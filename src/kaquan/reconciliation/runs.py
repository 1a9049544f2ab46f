"""A period's plain matches stored as runs (`MatchedRun`), in place of every row its days held."""

from datetime import date

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.reconciliation.models import ITEMS, LINES, MATCHES, RUNS
from kaquan.reconciliation.plain_matches import Run


async def replace(db: Database, session: AsyncSession, source: str, first: date, last: date, runs: list[Run]) -> None:
    """Store `runs`, the plain matches of `source`'s days [first, last], replacing those days' rows.

    Whatever was of the period's days (runs, open and auto items, matches) is about a line or a record the
    matching run places again: a gateway's pair has its record's day, a lone line or record its own. A line
    of a run may still have a row of another day from an earlier run (it paired with a record of that day
    then): one probe of the runs' id range finds out."""
    r, items, matches = RUNS.c, ITEMS.c, MATCHES.c
    of_period = (r.source == source, r.business_day.between(first, last))
    await session.execute(delete(RUNS).where(*of_period))
    open_items = (items.source == source, items.state.in_(("open", "auto")))
    await session.execute(delete(ITEMS).where(*open_items, items.business_day.between(first, last)))
    await session.execute(delete(MATCHES).where(matches.source == source, matches.business_day.between(first, last)))
    if not runs:
        return
    await db.copy_rows(session, RUNS, ["source", *Run._fields], [(source, *run) for run in runs])
    stored = LINES.c
    in_runs = (
        select(stored.id)
        .select_from(
            LINES.join(
                RUNS,
                and_(
                    stored.source == r.source,
                    stored.business_day == r.business_day,
                    stored.id.between(r.first_line_id, r.last_line_id),
                ),
            )
        )
        .where(*of_period)
    )
    lowest, highest = min(run.first_line_id for run in runs), max(run.last_line_id for run in runs)
    for table, of_source in ((ITEMS, open_items), (MATCHES, (matches.source == source,))):
        t = table.c
        elsewhere = (*of_source, t.line_id.between(lowest, highest), ~t.business_day.between(first, last))
        if (await session.execute(select(exists().where(*elsewhere)))).scalar_one():
            await session.execute(delete(table).where(*elsewhere, t.line_id.in_(in_runs)))
