"""The plain matches of a gateway's period, found in one streamed query before anything is staged.

A plain match is a payment line (first occurrence, with a merchant reference)
and the payment that reference names, where no other line names that payment,
both are of the same business day, and they surely agree
(`pairing.surely_matched`). Nearly
every line of a day's bill is one. The passes of `matching` would pair each such
line with its payment first and find the pair agreeing, so here they are found
at once, by one full join of the lines with the payments streamed in line order:

- the plain matches of the period's days become runs (`MatchedRun`): the
  source's lines of one day with ids from the first to the last of the run, all
  plain. A day's million pairs are a few thousand runs;
- the plain matches of the day either side are left alone: neither side is in
  the period, and neither could pair with anything that is;
- everything else (lines and payments that are not plain, refunds, lines kept
  by finance only break runs) is what `matching` stages for its passes.

Whether a payment is named by one line only is known once the stream has ended:
the references are remembered by their hash, and a reference seen twice (or a
hash collision) is looked up exactly afterwards.
"""

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import Date, FromClause, Select, and_, case, literal, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.reconciliation import pairing
from kaquan.reconciliation.days import days
from kaquan.reconciliation.models import LINES

_NOT_PLAIN, _PLAIN, _OTHER, _KEPT = 0, 1, 2, 3  # what the stream says of a line
_PARTITION = 50_000
_ID_SHIFT = 21  # a line of the period as one int: id << 21 | the day's place in the period << 1 | plain
_SLOT_MASK = (1 << _ID_SHIFT) - 1


class Run(NamedTuple):
    business_day: date
    first_line_id: int
    last_line_id: int
    lines: int


@dataclass
class Split:
    """A period's lines and payments divided: runs of plain matches, and the rest to stage."""

    runs: list[Run] = field(default_factory=list)
    lines_to_stage: list[int] = field(default_factory=list)  # line ids
    payments_to_stage: set[str] = field(default_factory=set)  # payment references

    @property
    def plain(self) -> int:
        return sum(run.lines for run in self.runs)


@dataclass(frozen=True)
class Scope:
    source: str
    wide_first: date  # the window streamed: the period and a day either side
    wide_last: date
    first: date  # the period
    last: date


async def split(
    db: Database, session: AsyncSession, scope: Scope, payments: FromClause, *, kept_line: Any = None
) -> Split:
    """Divide the window's lines and `payments` (kaquan's payments of the window but those whose items finance
    annotated or resolved: kind, ref, figures, status, day; a table indexed on `ref` where the database
    joins by index). `kept_line` is a condition on LINES for a line finance annotated or resolved: it only
    breaks runs, and it is not staged.

    A million rows pass through the loop below: each line of the period is kept as one int (its id, its day's
    place in the period, whether it is plain), sorted once the stream ends."""
    period = days(scope.first, scope.last)
    of_period: list[int] = []
    found = Split()
    seen: set[int] = set()
    again: set[str] = set()  # references met on a second line (or a colliding hash)
    keep, stage_line, stage_payment = of_period.append, found.lines_to_stage.append, found.payments_to_stage.add
    remember = seen.add
    stream = db.stream_rows(session, _stream(scope, period, payments, kept_line), _PARTITION)
    async for rows in stream:
        for line_id, what, ref in rows:
            if line_id is None:
                stage_payment(ref)
                continue
            if ref is not None:
                mark = hash(ref)
                if mark in seen:
                    again.add(ref)
                else:
                    remember(mark)
            slot, kind = what >> 2, what & 3
            if slot < len(period):
                keep(line_id << _ID_SHIFT | slot << 1 | (kind == _PLAIN))
            if kind != _PLAIN:
                if kind != _KEPT:
                    stage_line(line_id)
                if ref is not None:
                    stage_payment(ref)
    del seen
    of_period.sort()
    if again:
        await _unmake_shared(session, scope, again, kept_line, found, of_period)
    found.runs = _runs(of_period, period)
    return found


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


async def _unmake_shared(
    session: AsyncSession, scope: Scope, again: set[str], kept_line: Any, found: Split, of_period: list[int]
) -> None:
    """Lines naming a payment another line names too are not plain: stage them, and the payment."""
    shared = await _lines_naming(session, scope, again, kept_line)
    if not shared:
        return
    staged = set(found.lines_to_stage)
    for ref, line_ids in shared.items():
        found.payments_to_stage.add(ref)
        for line_id in line_ids:
            at = bisect_left(of_period, line_id << _ID_SHIFT)
            if at < len(of_period) and of_period[at] >> _ID_SHIFT == line_id:
                of_period[at] &= ~1
            if line_id not in staged:
                staged.add(line_id)
                found.lines_to_stage.append(line_id)


async def _lines_naming(
    session: AsyncSession, scope: Scope, refs: Iterable[str], kept_line: Any
) -> dict[str, list[int]]:
    """The references of `refs` that more than one candidate line of the window names, with those lines."""
    stored = LINES.c
    named: dict[str, list[int]] = {}
    ordered = sorted(refs)
    for start in range(0, len(ordered), 1000):
        stmt = select(stored.merchant_ref, stored.id).where(
            stored.source == scope.source,
            stored.business_day.between(scope.wide_first, scope.wide_last),
            stored.kind == "payment",
            stored.occurrence == 0,
            stored.merchant_ref.in_(ordered[start : start + 1000]),
        )
        if kept_line is not None:
            stmt = stmt.where(~kept_line)
        for ref, line_id in await session.execute(stmt):
            named.setdefault(ref, []).append(line_id)
    return {ref: ids for ref, ids in named.items() if len(ids) > 1}


def _runs(of_period: list[int], period: list[date]) -> list[Run]:
    """The period's plain lines as runs: per day, the longest stretches of plain lines in line order."""
    runs: list[Run] = []
    open_runs: dict[int, list[int]] = {}  # slot -> [first id, last id, lines]
    for key in of_period:
        line_id, slot = key >> _ID_SHIFT, (key & _SLOT_MASK) >> 1
        current = open_runs.get(slot)
        if key & 1:
            if current is None:
                open_runs[slot] = [line_id, line_id, 1]
            else:
                current[1] = line_id
                current[2] += 1
        elif current is not None:
            runs.append(Run(period[slot], *current))
            del open_runs[slot]
    runs.extend(Run(period[slot], *current) for slot, current in open_runs.items())
    return runs
