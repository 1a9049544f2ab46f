"""A statement's lines copied straight into `reconciliation_lines`, for a file nothing of which is stored yet.

Most files are a day nobody imported before. Their lines need no staging
table, no numbering pass and no INSERT … SELECT: each batch is copied into the
lines table as the reader makes it, with its business day worked out here and
occurrence 0. The table's unique key `(source, identity, occurrence)` is the
judge: should any line be stored already (an overlapping or corrected file),
the copy fails with `DuplicateRow`, the caller's savepoint undoes it, and the
file is read again through the staging path (`importing`), which skips what is
known.

A line whose identity repeats within the file must be numbered 1, 2, … This
module remembers the hash of every identity it copied (8 bytes a line, not the
texts); a line whose hash it saw before may be a repeat (or, rarely, another
identity with the same hash). Such lines are held back, and once the rest is
copied their occurrences are counted exactly: 0 for an identity this file did
not copy yet, else one more than the last.

On PostgreSQL a big format's lines never become Python objects: the reader's
polars frames (`ColumnarStatement.frames`) get their day and the statement's
columns added and are written as CSV by polars, which the server parses
(`Database.copy_csv`). Only the lines held back become `StatementLine`s. A
million-line bill otherwise costs seconds of Python under the GIL: a tuple per
line made by the reader, a row per line made here, and asyncpg encoding each.
"""

import io
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import Database
from kaquan.reconciliation.days import days_of, zone_of
from kaquan.reconciliation.models import LINES
from kaquan.reconciliation.reading_ahead import made_ahead
from kaquan.statements import LINE_SCHEMA, ColumnarStatement, Statement, StatementLine, lines_of

T = TypeVar("T")

# The lines table's columns in the order a copied row holds them: the reader's fields but its description.
COLUMNS = (
    *StatementLine._fields[: StatementLine._fields.index("description")],
    "business_day",
    "occurrence",
    "statement_id",
    "source",
)
_KEPT = len(COLUMNS) - 4
# The text columns: an empty CSV field there is an empty text, not NULL.
_TEXTS = (*(name for name in COLUMNS[:_KEPT] if LINE_SCHEMA[name] == pl.String), "source")
_CSV_TIME = "%Y-%m-%d %H:%M:%S%.f%:z"  # UTC with its offset, which PostgreSQL reads into timestamptz
HELD_BACK_AT_MOST = 100_000  # a file repeating more lines than this goes the staging path (it numbers in SQL)
_LOOKUP_CHUNK = 1_000


class TooManyRepeats(Exception):
    """More lines than `HELD_BACK_AT_MOST` may repeat an identity: the staging path numbers them in SQL."""


@dataclass(frozen=True)
class Copied:
    read: int
    repeated: int  # lines stored with an occurrence above 0


class _Rows:
    """Lines as rows of the lines table; the lines that may repeat an identity are held back."""

    def __init__(self, db: Database, source: str, statement_id: int) -> None:
        self._source, self._statement_id = source, statement_id
        self._as_text = db.copies_dates_as_text
        self._copy_datetime = db.copy_datetime
        self._zone = zone_of(source)
        self._seen: set[int] = set()
        self._moment: datetime | None = None
        self._stored_moment: Any = None
        self._day: Any = None
        self._first_tail: tuple[Any, ...] = ()  # what follows a line's fields at occurrence 0, on its day
        self.held_back: list[StatementLine] = []

    def of(self, batch: Sequence[StatementLine]) -> list[tuple[Any, ...]]:
        """The batch's rows but those held back (occurrence 0: nothing of the file had their identity yet).

        A million lines pass here on a thread beside the copy: the common row is a slice of the line and a
        tail built once per second of the bill."""
        seen, held_back, as_text, kept = self._seen, self.held_back, self._as_text, _KEPT
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for line in batch:
            mark = hash(line[1])
            if mark in seen:
                held_back.append(line)
                continue
            seen.add(mark)
            if as_text:
                append(self.row(line, 0))
                continue
            if line[3] is not self._moment:
                self._turn_to(line[3])
            append(line[:kept] + self._first_tail)
        if len(held_back) > HELD_BACK_AT_MOST:
            raise TooManyRepeats
        return rows

    def row(self, line: StatementLine, occurrence: int) -> tuple[Any, ...]:
        if line[3] is not self._moment:
            self._turn_to(line[3])
        tail = (self._day, occurrence, self._statement_id, self._source)
        if self._as_text:
            return (*line[:3], self._stored_moment, *line[4:_KEPT], *tail)
        return line[:_KEPT] + tail

    def _turn_to(self, moment: datetime) -> None:
        """The lines from here on are of `moment` (a bill is in time order: the lines of one second share it)."""
        self._moment = moment
        day = moment.astimezone(self._zone).date()
        self._stored_moment = self._copy_datetime(moment) if self._as_text else moment
        self._day = day.isoformat() if self._as_text else day
        self._first_tail = (self._day, 0, self._statement_id, self._source)


def marks_of(identities: pl.Series) -> pl.Series:
    """A 64-bit hash of each identity: what the frames' copy remembers of the identities it copied."""
    return identities.hash()


class _CsvRows:
    """Frames of lines as CSV rows of the lines table, written by polars; the lines that may repeat are held back."""

    def __init__(self, made: _Rows, source: str, statement_id: int) -> None:
        self._made = made
        self._seen: set[int] = set()
        self._tail = (
            days_of(source, pl.col("occurred_at")).alias("business_day"),
            pl.lit(0, pl.Int32).alias("occurrence"),
            pl.lit(statement_id, pl.Int64).alias("statement_id"),
            pl.lit(source, pl.String).alias("source"),
        )

    def of(self, frame: pl.DataFrame) -> bytes:
        """The frame's rows but those held back, as CSV in `COLUMNS`' order (occurrence 0, as `_Rows.of`)."""
        marks = marks_of(frame["identity"])
        listed = marks.to_list()
        may_repeat = ~marks.is_first_distinct()
        if not self._seen.isdisjoint(listed):
            seen_before = pl.Series(list(self._seen.intersection(listed)), dtype=marks.dtype)
            may_repeat = may_repeat | marks.is_in(seen_before.implode())
        self._seen.update(listed)
        if may_repeat.any():
            held_back = self._made.held_back
            held_back.extend(lines_of(frame.filter(may_repeat)))
            if len(held_back) > HELD_BACK_AT_MOST:
                raise TooManyRepeats
            frame = frame.filter(~may_repeat)
        written = io.BytesIO()  # bytes as polars writes them: a text result would be decoded and encoded again
        frame.select(*COLUMNS[:_KEPT], *self._tail).write_csv(
            written, include_header=False, datetime_format=_CSV_TIME, date_format="%Y-%m-%d"
        )
        return written.getvalue()


async def copy_lines(
    db: Database,
    session: AsyncSession,
    statement: Statement,
    statement_id: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
) -> Copied:
    """Copy `statement`'s lines into the lines table; raises `DuplicateRow` if one is stored already."""
    source = statement.header.source
    made = _Rows(db, source, statement_id)
    if db.copies_csv and isinstance(statement, ColumnarStatement):
        written = _CsvRows(made, source, statement_id)
        frames = statement.frames(batch_size)

        def next_csv() -> tuple[int, bytes] | None:
            frame = next(frames, None)
            return None if frame is None else (frame.height, written.of(frame))

        async def copy_csv(data: bytes) -> None:
            await db.copy_csv(session, LINES, COLUMNS, data, texts=_TEXTS)

        read = await _copied_ahead(db, next_csv, copy_csv, on_batch)
    else:
        batches = statement.batches(batch_size)

        def next_rows() -> tuple[int, list[tuple[Any, ...]]] | None:
            batch = next(batches, None)
            return None if batch is None else (len(batch), made.of(batch))

        async def copy_rows(rows: list[tuple[Any, ...]]) -> None:
            await db.copy_rows(session, LINES, COLUMNS, rows)

        read = await _copied_ahead(db, next_rows, copy_rows, on_batch)
    repeated = await _copy_held_back(db, session, made, source, statement_id)
    return Copied(read, repeated)


async def _copied_ahead(
    db: Database,
    make: Callable[[], tuple[int, T] | None],
    copy: Callable[[T], Awaitable[None]],
    on_batch: Callable[[int], None] | None,
) -> int:
    """Copy what `make()` returns (lines read, their rows) while it makes the next; returns the lines read."""
    read = 0
    async with aclosing(made_ahead(db, make)) as ready:
        async for count, rows in ready:
            if rows:
                await copy(rows)
            read += count
            if on_batch is not None:
                on_batch(count)
    return read


async def _copy_held_back(db: Database, session: AsyncSession, made: _Rows, source: str, statement_id: int) -> int:
    """Store the lines held back with their exact occurrences; returns how many repeat an earlier line."""
    if not made.held_back:
        return 0
    copied = await _copied_identities(session, {line.identity for line in made.held_back}, source, statement_id)
    next_occurrence: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    repeated = 0
    for line in made.held_back:
        occurrence = next_occurrence.get(line.identity, 1 if line.identity in copied else 0)
        next_occurrence[line.identity] = occurrence + 1
        repeated += occurrence > 0
        rows.append(made.row(line, occurrence))
    await db.copy_rows(session, LINES, COLUMNS, rows)
    return repeated


async def _copied_identities(session: AsyncSession, identities: set[str], source: str, statement_id: int) -> set[str]:
    """Which of `identities` the copy stored with occurrence 0 (another statement's line would have refused it)."""
    stored = LINES.c
    found: set[str] = set()
    ordered = sorted(identities)
    for start in range(0, len(ordered), _LOOKUP_CHUNK):
        chunk = ordered[start : start + _LOOKUP_CHUNK]
        result = await session.execute(
            select(stored.identity).where(
                stored.source == source,
                stored.identity.in_(chunk),
                stored.occurrence == 0,
                stored.statement_id == statement_id,
            )
        )
        found.update(result.scalars())
    return found
