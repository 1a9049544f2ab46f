"""Large CSV statements a few megabytes at a time as polars frames, checked column by column.

A provider's daily bill can hold a million rows; parsing each row in Python
costs several microseconds, so the big formats hand whole chunks of lines to
polars (Rust) and check and convert whole columns at once. Memory stays
bounded by the chunk size. A check that fails names the first bad row's
physical line and the column, exactly as a row-by-row reader would.
"""

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Final

import polars as pl

from kaquan.statements.lines import StatementRejected
from kaquan.statements.reading import MAX_LINE_BYTES, BlockDecoder

CHUNK_BYTES: Final = 8 << 20
TAIL_BYTES: Final = 64 << 10  # what may follow a table (summary rows): a few lines
# [0-9], never \d: polars' regex engine counts every Unicode digit as one
_AMOUNT: Final = r"^-?[0-9]+(\.[0-9]{1,2})?$"
_LOCAL_TIME: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_EXTRA: Final = "\x00extra"  # a column past the header's last: a row with more cells fills it
_FIRST: Final = "\x00first"  # the first cell of a row: the summary's first name ends the table
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
    """The rows of a CSV table after its header line, in chunks, up to the first row starting with `stop_prefix`.

    That row and what follows it (at most TAIL_BYTES: a summary) are read
    whole and decoded into `tail`; `tail` stays None when the file ends
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
        stop_prefix: str,
    ) -> None:
        self._stream = stream
        # positions, not names, in the schema: a header may repeat a name; only the columns read are parsed
        self._schema = {f"\x00{i}": pl.String for i in range(width + 1)}
        self._width = width
        wanted = {index: name for name, index in columns.items()} | {0: _FIRST, width - 1: _LAST, width: _EXTRA}
        self._projection = sorted(wanted)
        self._names = {f"\x00{index}": name for index, name in wanted.items()}
        self._copies = {name: wanted[index] for name, index in columns.items() if wanted[index] != name}
        self._decoder = decoder
        self._line = first_line
        self._stop_prefix = stop_prefix
        self._stop_bytes = stop_prefix.encode(decoder.codec)
        self.tail: Tail | None = None
        self.last_line = first_line - 1  # the last line read so far: the header's until a chunk is read

    def __iter__(self) -> Iterator[Chunk]:
        stream = self._stream
        while block := stream.read(CHUNK_BYTES):
            if not block.endswith(b"\n"):  # finish the last line: one copy of the block, no slicing
                block += _rest_of_line(stream, self._line)
            quoted = b'"' in block
            while quoted and block.count(b'"') % 2:  # a quoted cell holds a line break: read on to its end
                more = _rest_of_line(stream, self._line)
                if not more:
                    break
                block += more
            chunk, lines_read = self._frame(block, quoted=quoted)
            stops = chunk.frame[_FIRST].str.starts_with(self._stop_prefix)
            if stops.any():
                row = int(stops.arg_max() or 0)
                self._read_tail(block, int(chunk.lines[row]))
                if row:
                    yield Chunk(chunk.frame.head(row), chunk.lines.head(row))
                return
            if chunk.frame.height:
                yield chunk
            self._line += lines_read
            self.last_line = self._line - (1 if block.endswith(b"\n") else 0)

    def _read_tail(self, block: bytes, line: int) -> None:
        start = 0 if block.startswith(self._stop_bytes) else block.find(b"\n" + self._stop_bytes) + 1
        if start == 0 and not block.startswith(self._stop_bytes):  # the cell was quoted: not the table's end
            raise StatementRejected(f"a quoted row starts with {self._stop_prefix}", line=line)
        tail = block[start:] + self._stream.read(TAIL_BYTES)
        if self._stream.read(1):
            raise StatementRejected("the file goes on long after its table ends", line=line)
        text = self._decoder(tail, line)
        self.tail = Tail([(line + i, row) for i, row in enumerate(io.StringIO(text, newline=""))])

    def _frame(self, block: bytes, *, quoted: bool) -> tuple[Chunk, int]:
        """The block's rows, and how many physical lines it holds."""
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
        unterminated = 0 if data.endswith(b"\n") else 1
        if not quoted:  # no quoted cell, so no line break inside one: a row per line, blank ones included
            lines_read = frame.height - unterminated
            lines = pl.int_range(first_line, first_line + frame.height, eager=True, dtype=pl.Int64)
        else:
            lines_read = data.count(b"\n")
            if frame.height == lines_read + unterminated:
                lines = pl.int_range(first_line, first_line + frame.height, eager=True, dtype=pl.Int64)
            else:  # a quoted cell holds a line break: number the records as a CSV reader does
                lines = pl.Series(_record_lines(data.decode(), first_line), dtype=pl.Int64)
        frame = frame.rename(self._names).with_columns(lines.alias(_LINE))
        if frame[_FIRST].null_count():  # a blank line reads as a row of nulls (a null count is free to ask)
            frame = frame.filter(~pl.all_horizontal(pl.exclude(_LINE).is_null()))
        if self._copies:
            frame = frame.with_columns(pl.col(source).alias(name) for name, source in self._copies.items())
        return Chunk(frame.drop(_LINE), frame[_LINE]), lines_read


def _rest_of_line(stream: IO[bytes], line: int) -> bytes:
    rest = stream.readline(MAX_LINE_BYTES)
    if len(rest) == MAX_LINE_BYTES and not rest.endswith(b"\n"):
        raise StatementRejected("a line is longer than any statement row", line=line)
    return rest


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


def width_check(chunk: Chunk, *, last_may_be_empty: bool = False) -> Check:
    """Rows with more cells than the header, and with fewer where the last cell is never empty.

    polars reads an empty cell and a missing one alike (null): where the last
    column may be empty (Alipay's 备注), a short row is caught instead by the
    required cells it lacks (their checks fail on null).
    """
    frame = chunk.frame
    failed = frame[_EXTRA].is_not_null()
    if not last_may_be_empty:
        failed = failed | frame[_LAST].is_null()
    return None, failed, lambda row: "the row has more or fewer columns than the header (a truncated or broken row)"


def amount_check(column: str, values: pl.Series) -> Check:
    return (
        column,
        ~values.str.contains(_AMOUNT).fill_null(False),
        lambda row: f"{values[row]!r} is not an amount with at most 2 decimals",
    )


def time_check(column: str, values: pl.Series, *, where: pl.Series | None = None) -> Check:
    """Texts that are not "YYYY-MM-DD HH:MM:SS" times, or name no real time (month 13, 25 o'clock).

    The calendar is checked once per run of equal texts (a bill is in time
    order), not once per row.
    """
    runs = values.rle().struct.unnest()
    real = runs["value"].str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False).is_not_null()
    failed = ~values.str.contains(_LOCAL_TIME).fill_null(False)
    if not real.all():
        failed = failed | ~pl.Series(real).repeat_by(runs["len"]).explode()
    if where is not None:
        failed = failed & where
    return column, failed, lambda row: f"{values[row]!r} is not a date and time (YYYY-MM-DD HH:MM:SS)"


def fen(values: pl.Series) -> pl.Series:
    """Checked yuan texts ("12.34", "-0.5", "3") as Int64 fen, exactly (decimal, never float)."""
    return (values.cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64).alias(values.name)
