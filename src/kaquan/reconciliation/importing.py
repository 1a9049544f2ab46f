"""Storing a statement's lines once each, inside the caller's transaction.

A file that can be read again (`reopen`: every file `reconciliation.import_file`
imports) is first copied straight into the lines table (`copying`): the common
case, a day nobody imported before, writes each line once. Should the lines
table's unique key find a line stored already, that copy is undone and the file
read again through the staging path below.

The staging path: the lines stream from the reader in batches and are copied
(COPY on PostgreSQL) into a scratch table; the lines whose identity repeats
within the file are numbered, and one INSERT … SELECT stores the lines not
stored yet: a plain INSERT when nothing of the file's days is stored, else (or
when the `(source, identity, occurrence)` unique key refuses a line) one that
skips on that key what an overlapping file brought before.

The same file twice (same source and SHA-256) stores nothing and says so. A
reader that rejects the file raises out of here and the caller's transaction
rolls back: nothing of the file remains.
"""

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    String,
    Table,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database, DuplicateRow
from kaquan.kit.set_work import allow_large_sorts, drop_scratch_table, refresh_statistics, scratch_table
from kaquan.reconciliation.copying import Copied, TooManyRepeats, copy_lines
from kaquan.reconciliation.days import business_day, day_of
from kaquan.reconciliation.errors import StatementWrongAccount
from kaquan.reconciliation.models import LINES, STATEMENTS, StatementImport
from kaquan.reconciliation.reading_ahead import made_ahead
from kaquan.reconciliation.scratch_tables import line_figures
from kaquan.statements import Statement, StatementLine

BATCH = 50_000
REFRESH_AFTER = 10_000  # lines stored at once: the planner must know before the period is matched
WORK_MEMORY_MB = 128  # numbering a million lines' occurrences sorts in memory
# The line's fields the lines table keeps as they are (its business day and occurrence are worked out).
_STORED = (
    "line_no",
    "identity",
    "kind",
    "occurred_at",
    "amount_minor",
    "fee_minor",
    "currency",
    "merchant_ref",
    "counterparty_ref",
    "refund_ref",
    "status",
)


@dataclass(frozen=True)
class ImportResult:
    """What became of one file.

    `already_imported`: the same file (source and SHA-256) was stored before and
    nothing changed; the counts are then those of that first import.
    """

    statement_id: int
    source: str
    account: str
    lines_read: int
    lines_new: int  # stored now
    lines_known: int  # stored before, by an overlapping file (or this one)
    lines_repeated: int  # an identity seen earlier in this same file: stored as a duplicate line
    already_imported: bool


def _result(row: StatementImport, *, again: bool) -> ImportResult:
    return ImportResult(
        row.id, row.source, row.account, row.lines_read, row.lines_new, row.lines_known, row.lines_repeated, again
    )


async def import_statement(
    db: Database,
    session: AsyncSession,
    statement: Statement,
    *,
    sha256: str,
    filename: str,
    actor: str,
    expected_account: str | None = None,
    on_batch: Callable[[int], None] | None = None,
    reopen: Callable[[], Awaitable[Statement]] | None = None,
) -> ImportResult:
    """Store `statement`'s lines; `sha256` is the hex digest of the file's bytes, `on_batch(lines)` reports progress.

    `expected_account` is the merchant id / app id the gateway is configured
    with: a file that names another account is refused (`statement_wrong_account`).
    `reopen` reads the file again from its start: with it the lines are first
    copied straight into the lines table (`copying`), and only a file something
    of which is stored already is read a second time, through the staging table.
    """
    header = statement.header
    if expected_account and header.account and header.account != expected_account:
        raise StatementWrongAccount(
            f"this {header.source} statement is for account {header.account}, not {expected_account}",
            account=header.account,
            expected=expected_account,
        )
    table = STATEMENTS
    claimed = await session.execute(
        db.insert(table)
        .values(
            source=header.source,
            account=header.account,
            period_start=header.period_start,
            period_end=header.period_end,
            sha256=sha256.lower(),
            filename=filename[:255],
            currency=header.currency,
            lines_read=0,
            lines_new=0,
            lines_known=0,
            lines_repeated=0,
            imported_by=actor,
            imported_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["source", "sha256"])
        .returning(table.c.id)
    )
    statement_id = claimed.scalar_one_or_none()
    if statement_id is None:
        earlier = await session.execute(
            select(StatementImport).where(StatementImport.source == header.source, StatementImport.sha256 == sha256)
        )
        return _result(earlier.scalar_one(), again=True)

    await allow_large_sorts(session, WORK_MEMORY_MB)
    copied = await _copied(db, session, statement, statement_id, on_batch) if reopen is not None else None
    if copied is not None:
        read, new, repeated = copied.read, copied.read, copied.repeated
    else:
        if reopen is not None:
            statement = await reopen()
        read, new, repeated = await _store_staged(db, session, statement, statement_id, on_batch)
    if new >= REFRESH_AFTER:
        await refresh_statistics(session, LINES)
    await session.execute(
        update(StatementImport)
        .where(StatementImport.id == statement_id)
        .values(lines_read=read, lines_new=new, lines_known=read - new, lines_repeated=repeated)
    )
    row = (
        await session.execute(
            select(StatementImport).where(StatementImport.id == statement_id).execution_options(populate_existing=True)
        )
    ).scalar_one()
    return _result(row, again=False)


async def _copied(
    db: Database,
    session: AsyncSession,
    statement: Statement,
    statement_id: int,
    on_batch: Callable[[int], None] | None,
) -> Copied | None:
    """The lines copied straight into the lines table, or None (and nothing stored) if some were there already."""
    try:
        async with session.begin_nested():
            return await copy_lines(db, session, statement, statement_id, BATCH, on_batch)
    except (DuplicateRow, TooManyRepeats):
        return None


async def _store_staged(
    db: Database,
    session: AsyncSession,
    statement: Statement,
    statement_id: int,
    on_batch: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Store the lines through a staging table, skipping those stored before; (read, new, repeated)."""
    staged, read, (first, last) = await _stage(db, session, statement, on_batch)
    repeats = await _number_repeats(session, staged)
    source = statement.header.source
    new = await _store(db, session, staged, repeats, statement_id, source, first, last) if read else 0
    repeated = (await session.execute(select(func.count()).where(repeats.c.occurrence > 0))).scalar_one()
    await drop_scratch_table(session, repeats)
    await drop_scratch_table(session, staged)
    return read, new, int(repeated)


async def _stage(
    db: Database, session: AsyncSession, statement: Statement, on_batch: Callable[[int], None] | None
) -> tuple[Table, int, tuple[date, date]]:
    """Copy the lines as the reader made them into a scratch table; returns it, the count and the days spanned."""
    staged = await scratch_table(
        session,
        "reconciliation_staged_lines",
        Column("line_no", Integer, nullable=False),
        Column("identity", String(160), nullable=False),
        *line_figures(),
        Column("description", Text, nullable=False),
    )
    source = statement.header.source
    read, earliest, latest = 0, None, None
    moment = itemgetter(3)
    batches = statement.batches(BATCH)

    def next_batch() -> list[StatementLine] | None:
        return next(batches, None)

    async with aclosing(made_ahead(db, next_batch)) as ready:
        async for batch in ready:
            if batch:
                low, high = min(map(moment, batch)), max(map(moment, batch))
                earliest = low if earliest is None or low < earliest else earliest
                latest = high if latest is None or high > latest else latest
                # A line is a tuple in the staging table's column order: COPY takes it as it is where it can.
                rows = batch if not db.copies_dates_as_text else [_with_text_time(db, line) for line in batch]
                await db.copy_rows(session, staged, StatementLine._fields, rows)
                read += len(batch)
                if on_batch is not None:
                    on_batch(len(batch))
    if earliest is None or latest is None:
        return staged, 0, (date.min, date.min)
    return staged, read, (business_day(source, earliest), business_day(source, latest))


def _with_text_time(db: Database, line: StatementLine) -> tuple[Any, ...]:
    return line._replace(occurred_at=db.copy_datetime(line.occurred_at))


async def _number_repeats(session: AsyncSession, staged: Table) -> Table:
    """The occurrence of every staged line whose identity comes more than once in the file (0, 1, … by line).

    Repeats are rare: numbering only them spares sorting a million lines by identity (a sort that spilled
    to disk) to give all the others the occurrence 0 they have anyway.
    """
    repeats = await scratch_table(
        session,
        "reconciliation_staged_repeats",
        Column("line_no", Integer, nullable=False),
        Column("identity", String(160), nullable=False),
        Column("occurrence", Integer, nullable=False),
    )
    s = staged.c
    repeated = select(s.identity).group_by(s.identity).having(func.count() > 1)
    occurrence = func.row_number().over(partition_by=s.identity, order_by=s.line_no) - 1
    numbered = select(s.line_no, s.identity, occurrence).where(s.identity.in_(repeated))
    await session.execute(insert(repeats).from_select(["line_no", "identity", "occurrence"], numbered))
    return repeats


async def _store(
    db: Database,
    session: AsyncSession,
    staged: Table,
    repeats: Table,
    statement_id: int,
    source: str,
    first: date,
    last: date,
) -> int:
    """Insert the staged lines not stored yet, with their occurrences; returns how many were new."""
    chosen = select(
        *(staged.c[name] for name in _STORED),
        day_of(source, staged.c.occurred_at, first, last).label("business_day"),
        func.coalesce(repeats.c.occurrence, 0),
        literal(statement_id, BigInteger),
        literal(source, String),
    ).select_from(
        staged.outerjoin(repeats, and_(repeats.c.line_no == staged.c.line_no, repeats.c.identity == staged.c.identity))
    )
    chosen = chosen.where(true())  # SQLite reads INSERT … SELECT … ON CONFLICT unambiguously only with a WHERE
    stmt = db.insert(LINES).from_select([*_STORED, "business_day", "occurrence", "statement_id", "source"], chosen)
    if not await _days_stored(session, source, first, last):
        # Nothing of these days is stored: a plain INSERT, which spares ON CONFLICT's probe of the unique index
        # before every row. Should a line be stored after all (a line of another day, a concurrent import),
        # the unique key refuses it, the savepoint undoes the attempt and the lines go in as below.
        try:
            async with session.begin_nested():
                result = await session.execute(stmt)
            return int(result.rowcount)  # type: ignore[attr-defined]
        except IntegrityError:
            pass
    result = await session.execute(stmt.on_conflict_do_nothing(index_elements=["source", "identity", "occurrence"]))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _days_stored(session: AsyncSession, source: str, first: date, last: date) -> bool:
    """Whether any line of `source` is stored on the business days [first, last] (one probe of the day index)."""
    stored = LINES.c
    on_days = exists().where(stored.source == source, stored.business_day.between(first, last))
    return bool((await session.execute(select(on_days))).scalar_one())
