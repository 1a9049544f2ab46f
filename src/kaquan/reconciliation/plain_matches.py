"""The plain matches of a gateway's period, found by one query before anything is staged.

A plain match is a payment line (first occurrence, with a merchant reference)
and the payment that reference names, where no other line names that payment,
both are of the same business day, and they surely agree
(`pairing.surely_matched`). Nearly every line of a day's bill is one. The passes
of `matching` would pair each such line with its payment first and find the
pair agreeing, so here they are found at once, by one full join of the window's
lines with its payments, read as a polars frame (a million rows, no Python
object each) and divided column-wise:

- the plain matches of the period's days become runs (`MatchedRun`): the
  source's lines of one day with ids from the first to the last of the run, all
  plain. A day's million pairs are a few thousand runs;
- the plain matches of the day either side are left alone: neither side is in
  the period, and neither could pair with anything that is;
- everything else (lines and payments that are not plain, refunds; lines kept
  by finance only break runs) is what `matching` stages for its passes.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import polars as pl
from sqlalchemy import Date, FromClause, Select, and_, case, literal, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.reconciliation import pairing
from kaquan.reconciliation.days import days
from kaquan.reconciliation.models import LINES

_NOT_PLAIN, _PLAIN, _OTHER, _KEPT = 0, 1, 2, 3  # what the query says of a line
# The frame peaks near 300 MB a million lines: a window holding more (a month matched at once) is left to
# `matching`'s passes, which work in the database and spill to disk.
LINES_AT_MOST = 4_000_000
_SCHEMA = {"line_id": pl.Int64, "what": pl.Int64, "ref": pl.String}


class Run(NamedTuple):
    business_day: date
    first_line_id: int
    last_line_id: int
    lines: int


@dataclass(frozen=True)
class Split:
    """A period's lines and payments divided: runs of plain matches, and the rest to stage."""

    runs: list[Run]
    lines_to_stage: list[int]  # line ids
    payments_to_stage: list[str]  # payment references


@dataclass(frozen=True)
class Scope:
    source: str
    wide_first: date  # the window queried: the period and a day either side
    wide_last: date
    first: date  # the period
    last: date


async def split(
    db: Database, session: AsyncSession, scope: Scope, payments: FromClause, *, kept_line: Any = None
) -> Split | None:
    """Divide the window's lines and `payments` (kaquan's payments of the window but those whose items finance
    annotated or resolved: kind, ref, figures, status, day; a table indexed on `ref` where the database
    joins by index). `kept_line` is a condition on LINES for a line finance annotated or resolved: it only
    breaks runs, and it is not staged. None if the join holds more than `LINES_AT_MOST` rows (it is read
    no further)."""
    period = days(scope.first, scope.last)
    query = _stream(scope, period, payments, kept_line).limit(LINES_AT_MOST + 1)
    rows = await db.frame_of(session, query, _SCHEMA)
    if rows.height > LINES_AT_MOST:
        return None
    line_id, ref = pl.col("line_id"), pl.col("ref")
    joined = line_id.is_not_null() & ref.is_not_null()
    # A payment is in the join once, or once per line naming it: a reference repeated is a payment two lines
    # name, and neither line is plain. Repeats are found by the references' 64-bit hashes (a million texts
    # hashed into a table took 200 MB): two references that merely share one go to the passes, which pair
    # them exactly.
    named_again = joined & pl.when(joined).then(ref.hash()).is_duplicated()
    rows = rows.with_columns(
        slot=pl.col("what") // 4,
        plain=((pl.col("what") % 4) == _PLAIN).fill_null(False) & ~named_again,
        kept=((pl.col("what") % 4) == _KEPT).fill_null(False),
    ).drop("what")
    plain = pl.col("plain")
    lines_to_stage = rows.filter(line_id.is_not_null() & ~plain & ~pl.col("kept"))["line_id"].to_list()
    payments_to_stage = rows.filter(ref.is_not_null() & ~plain)["ref"].unique().to_list()
    return Split(_runs(rows.select("line_id", "slot", "plain"), period), lines_to_stage, payments_to_stage)


def _runs(rows: pl.DataFrame, period: list[date]) -> list[Run]:
    """The period's plain lines as runs: per day, the longest stretches of plain lines in line order."""
    slot, plain = pl.col("slot"), pl.col("plain")
    of_period = rows.filter(pl.col("line_id").is_not_null() & (slot < len(period))).sort("slot", "line_id")
    stretch = ((plain != plain.shift(1)) | (slot != slot.shift(1))).fill_null(True).cum_sum()
    runs = (
        of_period.with_columns(stretch=stretch)
        .filter(plain)
        .group_by("stretch", maintain_order=True)
        .agg(slot.first(), pl.col("line_id").min().alias("first"), pl.col("line_id").max().alias("last"), pl.len())
    )
    return [
        Run(period[n], first, last, count)
        for n, first, last, count in runs.select("slot", "first", "last", "len").iter_rows()
    ]


def _stream(scope: Scope, period: list[date], payments: FromClause, kept_line: Any) -> Select[Any]:
    """Every line of the window once (a candidate joined with the payment it names, if any), and every payment
    no line names. Columns: line id (NULL for such a payment), `what` (the line's day's place in the period,
    or past it for a day either side, times 4, plus what the line is: `_NOT_PLAIN`, `_PLAIN`, `_OTHER`,
    `_KEPT`), and the payment's reference.

    One scan of the lines: a line that is no candidate (not a payment's first occurrence with a reference, or
    kept) joins by a NULL key, which meets nothing."""
    stored = LINES.c
    candidate = and_(stored.kind == "payment", stored.occurrence == 0, stored.merchant_ref != "")
    chosen = candidate if kept_line is None else and_(candidate, ~kept_line)
    what = [(chosen, _NOT_PLAIN)] if kept_line is None else [(kept_line, _KEPT), (candidate, _NOT_PLAIN)]
    lines = (
        select(
            stored.id,
            stored.business_day,
            case((chosen, stored.merchant_ref), else_=null()).label("key"),
            case(*what, else_=_OTHER).label("what"),
            stored.amount_minor,
            stored.fee_minor,
            stored.currency,
            stored.status,
        )
        .where(stored.source == scope.source, stored.business_day.between(scope.wide_first, scope.wide_last))
        .subquery("window_lines")
    )
    lc, rc = lines.c, payments.c
    plain = and_(rc.ref.is_not(None), rc.day == lc.business_day, pairing.surely_matched(lines, payments))
    return select(
        lc.id,
        _slot(lc.business_day, period) * 4 + case((plain, _PLAIN), else_=lc.what),
        rc.ref,
    ).select_from(lines.join(payments, lc.key == rc.ref, full=True))


def _slot(day: Any, period: list[date]) -> Any:
    """SQL for the place of `day` in the period (0 for its first day), or len(period) for a day outside it."""
    return case(*((day == literal(each, Date), n) for n, each in enumerate(period)), else_=len(period))
