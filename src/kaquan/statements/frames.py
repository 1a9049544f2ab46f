"""Statement lines as polars frames: the columnar readers' one output, and its one conversion to `StatementLine`s.

A big format's reader makes each chunk of its file a frame with a column per
`StatementLine` field (`LINE_SCHEMA`). Who can take columns (a COPY of CSV
written by polars) takes the frames as they are; `lines_of` makes the named
tuples everyone else takes, at C speed: a Python datetime per second of the
bill and a Python string per distinct product name or status, shared by the
rows that repeat them.
"""

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Final

import polars as pl

from kaquan.statements.lines import StatementLine

LINE_SCHEMA: Final = pl.Schema(
    {
        "line_no": pl.Int64(),
        "identity": pl.String(),
        "kind": pl.String(),
        "occurred_at": pl.Datetime("us", "UTC"),
        "amount_minor": pl.Int64(),
        "fee_minor": pl.Int64(),
        "currency": pl.String(),
        "merchant_ref": pl.String(),
        "counterparty_ref": pl.String(),
        "refund_ref": pl.String(),
        "status": pl.String(),
        "description": pl.String(),
    }
)
# Texts that few distinct values fill: one Python string each, shared by the rows
_FEW_TEXTS: Final = frozenset(("kind", "currency", "status", "description"))


def line_frame(height: int, columns: dict[str, pl.Series | str]) -> pl.DataFrame:
    """A frame of `height` lines from a column per `StatementLine` field; a text stands for a column of it."""
    return pl.DataFrame(
        [
            (value if isinstance(value, pl.Series) else pl.repeat(value, height, dtype=pl.String, eager=True)).alias(
                name
            )
            for name, value in ((name, columns[name]) for name in LINE_SCHEMA)
        ],
        schema=LINE_SCHEMA,
    )


def utc_times(values: pl.Series, offset: timedelta) -> pl.Series:
    """Checked local "YYYY-MM-DD HH:MM:SS" texts of a zone `offset` ahead of UTC, as UTC datetimes."""
    local = values.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", cache=True)
    return (local - offset).dt.replace_time_zone("UTC")


def sized(frames: Iterable[pl.DataFrame], size: int, check_end: Callable[[], None]) -> Iterator[pl.DataFrame]:
    """`frames` cut into frames of `size` lines; those after the last full one only once `check_end()` passed.

    A format that prints totals after its rows checks them in `check_end`: a file whose totals are wrong
    is refused before its last lines are handed out.
    """
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        if held >= size:
            joined = pl.concat(pending)
            whole = held // size * size
            for start in range(0, whole, size):
                yield joined.slice(start, size)
            pending, held = [joined.slice(whole)], held - whole
    check_end()
    if held:
        joined = pl.concat(pending)
        for start in range(0, held, size):
            yield joined.slice(start, size)


def lines_of(frame: pl.DataFrame) -> list[StatementLine]:
    """A frame of `LINE_SCHEMA` as `StatementLine`s, in its order."""
    columns: list[Sequence[object]] = []
    for name in LINE_SCHEMA:
        values = frame[name]
        if name == "occurred_at":
            columns.append(_moments(values))
        elif name in _FEW_TEXTS:
            columns.append(repeated_texts(values))
        else:
            columns.append(values.to_list())
    return statement_lines(*columns)


def _moments(values: pl.Series) -> list[datetime]:
    """UTC datetimes as aware Python datetimes, one object per run of equal values (a bill is in time order)."""
    runs = values.dt.replace_time_zone(None).rle().struct.unnest()
    moments: list[datetime] = []
    extend = moments.extend
    for moment, length in zip(runs["value"].to_list(), runs["len"].to_list(), strict=True):
        extend([moment.replace(tzinfo=UTC)] * length)
    return moments


def repeated_texts(values: pl.Series) -> list[object]:
    """A text column of few distinct values (product names, currencies) as Python strings shared between rows."""
    distinct = values.unique().sort()
    if len(distinct) * 8 > len(values):
        return values.to_list()
    names = distinct.to_list()
    return list(map(names.__getitem__, distinct.search_sorted(values).to_list()))


def statement_lines(*columns: Iterable[object]) -> list[StatementLine]:
    """StatementLines from their fields column by column, at C speed.

    `tuple.__new__` skips the named tuple's Python-level `__new__`, and the
    cyclic garbage collector is paused while the chunk's tuples are built:
    tuples of strings, ints and datetimes hold no cycles, and a collection
    every 700 new tuples would otherwise cost more than building them.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return list(map(tuple.__new__, repeat(StatementLine), zip(*columns, strict=True)))
    finally:
        if paused:
            gc.enable()
