"""Large CSV statements a few megabytes at a time as polars frames, checked column by column.

A provider's daily bill can hold a million rows; parsing each row in Python
costs several microseconds, so the big formats hand whole chunks of lines to
polars (Rust) and check and convert whole columns at once. Memory stays
bounded by the chunk size. A check that fails names the first bad row's
physical line and the column, exactly as a row-by-row reader would.
"""

import csv
import gc
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import IO, Final

import polars as pl

from kaquan.statements.lines import StatementLine, StatementRejected
from kaquan.statements.reading import MAX_LINE_BYTES, BlockDecoder

CHUNK_BYTES: Final = 8 << 20
TAIL_BYTES: Final = 64 << 10  # what may follow a table (summary rows): a few lines
# [0-9], never \d: polars' regex engine counts every Unicode digit as one
_AMOUNT: Final = r"^-?[0-9]+(\.[0-9]{1,2})?$"
_LOCAL_TIME: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_EXTRA: Final = "\x00extra"  # a column past the header's last: a row with more cells fills it
_LAST: Final = "\x00last"  # the header's last column: a row with fewer cells leaves it empty
_LINE: Final = "\x00line"


@dataclass(frozen=True)
class Chunk:
    """Rows of the table as a frame of text columns (blank lines dropped), and the physical line of each row."""

    frame: pl.DataFrame
    lines: pl.Series


@dataclass(frozen=True)
class Tail:
    """The lines after the table (a summary), decoded, each with its line number."""

    lines: list[tuple[int, str]]


class Table:
    """The rows of a CSV table after its header line, in chunks, up to the line `stop` recognises.

    `stop(block)` returns the offset of the first line after the table in a
    block of whole lines, or -1. What follows that line (at most TAIL_BYTES)
    is read whole and decoded into `tail`; `tail` is None when the file ends
    without it, which is a truncated file for a format that has one.
    """

    def __init__(
        self,
        stream: IO[bytes],
        columns: Mapping[str, int],
        width: int,
        decoder: BlockDecoder,
        *,
        first_line: int,
        stop: Callable[[bytes], int],
    ) -> None:
        self._stream = stream
        # positions, not names, in the schema: a header may repeat a name; only the columns read are parsed
        self._schema = {f"\x00{i}": pl.String for i in range(width + 1)}
        self._width = width
        wanted = {index: name for name, index in columns.items()} | {width - 1: _LAST, width: _EXTRA}
        self._projection = sorted(wanted)
        self._names = {f"\x00{index}": name for index, name in wanted.items()}
        self._repeated = {name: _LAST for name, index in columns.items() if index == width - 1}
        self._decoder = decoder
        self._line = first_line
        self._stop = stop
        self.tail: Tail | None = None
        self.last_line = first_line

    def __iter__(self) -> Iterator[Chunk]:
        stream = self._stream
        rest = b""
        while True:
            block = stream.read(CHUNK_BYTES)
            if block:
                block = rest + block
                cut = _cut(block)
                if cut == 0:
                    if len(block) > CHUNK_BYTES + MAX_LINE_BYTES:
                        raise StatementRejected("a line is longer than any statement row", line=self._line)
                    rest = block
                    continue
                block, rest = block[:cut], block[cut:]
            else:
                block, rest = rest, b""
                if not block:
                    return
            end = self._stop(block)
            if end >= 0:
                self._read_tail(block[end:] + rest, self._line + block.count(b"\n", 0, end))
                block = block[:end]
            newlines = block.count(b"\n")
            if block:
                yield self._frame(block, newlines)
            self._line += newlines
            self.last_line = self._line - (1 if block.endswith(b"\n") else 0)
            if end >= 0:
                return

    def _read_tail(self, tail: bytes, line: int) -> None:
        tail += self._stream.read(TAIL_BYTES)
        if self._stream.read(1):
            raise StatementRejected("the file goes on long after its table ends", line=line)
        text = self._decoder(tail, line)
        self.tail = Tail([(line + i, row) for i, row in enumerate(io.StringIO(text, newline=""))])

    def _frame(self, block: bytes, newlines: int) -> Chunk:
        first_line = self._line
        decoder = self._decoder
        # polars checks UTF-8 itself; the decoder is asked only to name the line of a failure
        data = block if decoder.codec == "utf-8" else decoder(block, first_line).encode()
        try:
            frame = pl.read_csv(
                data,
                has_header=False,
                schema=self._schema,
                columns=self._projection,
                truncate_ragged_lines=True,
                quote_char='"',
                raise_if_empty=False,
                missing_columns="insert",
            )
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError):
            _explain(decoder(block, first_line), first_line, self._width)
            raise
        if frame.height == newlines + (0 if data.endswith(b"\n") else 1):
            lines = pl.int_range(first_line, first_line + frame.height, eager=True, dtype=pl.Int64)
        else:  # a quoted cell holds a newline: number the records as a CSV reader does
            lines = pl.Series(_record_lines(data.decode(), first_line), dtype=pl.Int64)
        frame = frame.rename(self._names).with_columns(lines.alias(_LINE))
        blank = pl.all_horizontal(pl.exclude(_LINE).is_null())
        if frame.select(blank.any()).item():
            frame = frame.filter(~blank)
        for name, same in self._repeated.items():
            frame = frame.with_columns(pl.col(same).alias(name))
        return Chunk(frame.drop(_LINE), frame[_LINE])


def _cut(block: bytes) -> int:
    """Where to end a chunk: after its last newline outside quotes (a quoted cell may hold a newline)."""
    cut = block.rfind(b"\n") + 1
    while cut and b'"' in block and block.count(b'"', 0, cut) % 2:
        cut = block.rfind(b"\n", 0, cut - 1) + 1
    return cut


def _record_lines(text: str, first_line: int) -> list[int]:
    """The line each CSV record starts on (blank lines are records too, as polars reads them)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts: list[int] = []
    end = 0
    for _ in reader:
        starts.append(first_line + end)
        end = reader.line_num
    return starts


def _explain(text: str, first_line: int, width: int) -> None:
    """Polars refused a chunk that decodes: name the line, as a row-by-row reader would."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    try:
        for record in reader:
            if record and len(record) != width:
                raise StatementRejected(
                    f"the row has {len(record)} columns, the header {width} (a truncated or broken row)",
                    line=first_line + end,
                )
            end = reader.line_num
    except csv.Error as error:
        raise StatementRejected(f"the CSV does not parse: {error}", line=first_line + reader.line_num - 1) from None


# --- column checks -------------------------------------------------------------------------------


Check = tuple[str | None, pl.Series, Callable[[int], str]]


def unticked(values: pl.Series) -> pl.Series:
    """The column without the backtick WeChat Pay puts before every value (cut blind where every value has it)."""
    if values.str.starts_with("`").all():
        return values.str.slice(1)
    return values.str.strip_prefix("`")


def first_failure(chunk: Chunk, checks: Sequence[Check]) -> None:
    """Raise for the earliest row any check fails on; `checks` are (column, failed mask, message for a row)."""
    worst: tuple[int, int] | None = None
    for order, (_, failed, _) in enumerate(checks):
        if failed.any():
            row = int(failed.arg_max() or 0)
            if worst is None or (row, order) < worst:
                worst = (row, order)
    if worst is not None:
        row, order = worst
        column, _, message = checks[order]
        raise StatementRejected(message(row), line=int(chunk.lines[row]), column=column)


def width_check(chunk: Chunk) -> Check:
    frame = chunk.frame
    return (
        None,
        frame[_EXTRA].is_not_null() | frame[_LAST].is_null(),
        lambda row: "the row has more or fewer columns than the header (a truncated or broken row)",
    )


def amount_check(column: str, values: pl.Series) -> Check:
    return (
        column,
        ~values.str.contains(_AMOUNT).fill_null(False),
        lambda row: f"{values[row]!r} is not an amount with at most 2 decimals",
    )


def time_check(column: str, values: pl.Series, *, where: pl.Series | None = None) -> Check:
    parsed = values.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
    failed = parsed.is_null() | ~values.str.contains(_LOCAL_TIME).fill_null(False)
    if where is not None:
        failed = failed & where
    return column, failed, lambda row: f"{values[row]!r} is not a date and time (YYYY-MM-DD HH:MM:SS)"


def fen(values: pl.Series) -> pl.Series:
    """Checked yuan texts ("12.34", "-0.5", "3") as Int64 fen, exactly (decimal, never float)."""
    return (values.cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64).alias(values.name)


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


class LocalTimes:
    """Checked local "YYYY-MM-DD HH:MM:SS" texts to aware UTC datetimes, each distinct second converted once."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset
        self._known: dict[str, datetime] = {}

    def __call__(self, texts: list[str]) -> list[datetime]:
        known = self._known
        if len(known) > 200_000:
            known.clear()
        offset = self._offset
        for text in set(texts).difference(known):
            known[text] = (datetime.fromisoformat(text) - offset).replace(tzinfo=UTC)
        return list(map(known.__getitem__, texts))


def line_starting(prefix: bytes) -> Callable[[bytes], int]:
    """A `stop` for `Table`: the offset of the first line starting with `prefix`, or -1."""
    marker = b"\n" + prefix

    def stop(block: bytes) -> int:
        if block.startswith(prefix):
            return 0
        found = block.find(marker)
        return found + 1 if found >= 0 else -1

    return stop
