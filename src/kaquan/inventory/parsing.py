"""Read an operator's code file, as a stream, into code lines and per-line problems.

A code file is what operators export from a supplier's portal or a spreadsheet:
one code per line, `card_no,secret` pairs, or a CSV with a header. Whole-file
problems (unreadable encoding, no codes, no secret column) raise
`ImportFileError`; everything wrong with a single line becomes a `LineProblem`
so the operator can fix the file by line number and retry.

Secrets never appear in a problem's reason or an error message: those reach
logs and screens. Nor do card numbers, though they are not secret: in a file
with shifted or swapped columns, what stands in the card column is a secret.

Memory: a file is read in chunks of `READ_SIZE` bytes and its codes come out in
blocks, so what is held at any time does not grow with the file: one chunk, one
block, at most `ProblemLog.limit` problems (the lowest line numbers) and a count
of the rest. A line longer than `MAX_LINE_CHARS` is a whole-file error rather
than an ever-growing buffer. Duplicates within the file are left to the
importer, which has the database find them; `parse_code_file`, for small files
held in memory anyway (leak tracing, the demo), finds them in memory.

Encoding: a named encoding is used as given. Otherwise a UTF-8 BOM means
UTF-8; plain ASCII needs no choice; the first chunk holding other bytes is
tried as UTF-8, then GB18030 (which reads GBK), and that choice holds for the
rest of the file: a later line that does not decode is an error naming it.

Speed: a million single-layout lines parse in about a second. That layout runs
almost entirely inside C (`map`, `filter`, `zip`, `dict`), and no layout uses a
per-line regex.
"""

import codecs
import csv
import datetime
import gc
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from itertools import chain, count, repeat
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from kaquan.kit.errors import BadInput

SUPPORTED_ENCODINGS: Final = ("utf-8", "utf-8-sig", "gb18030")
LAYOUTS: Final = ("single", "pair", "csv")
READ_SIZE: Final = 64 * 1024
"""Bytes read at a time; a block of lines never holds more than one such chunk's worth."""
MAX_LINE_CHARS: Final = 64 * 1024
MAX_REPORTED_PROBLEMS: Final = 200
"""Problems kept with their line numbers; beyond them only a count (an all-invalid file has millions)."""

SECRET_COLUMNS: Final = frozenset({"secret", "password", "code", "pin", "卡密", "密码"})
CARD_COLUMNS: Final = frozenset({"card_no", "card", "card_number", "卡号"})
EXPIRY_COLUMNS: Final = frozenset({"expires_on", "expiry", "expire", "有效期", "过期时间"})
_KNOWN_COLUMNS: Final = SECRET_COLUMNS | CARD_COLUMNS | EXPIRY_COLUMNS

# Operators paste from spreadsheets (tab), type Chinese punctuation (full-width
# comma) or export CSV (comma); all three separate the fields of a line.
_SEPARATORS: Final = (",", "\t", "，")
_CSV_BLOCK: Final = 10_000
_DATE_CACHE: Final = 1_000


class ProblemCode(StrEnum):
    """Machine-readable reason a line was not taken; compares equal to its string value."""

    MALFORMED_LINE = "malformed_line"
    EMPTY_SECRET = "empty_secret"  # noqa: S105 - a problem code, not a password
    BAD_DATE = "bad_date"
    TOO_MANY_FIELDS = "too_many_fields"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    FORMAT_RULE = "format_rule"


class CodeLine(NamedTuple):
    """One code read from the file.

    A named tuple rather than a frozen dataclass: a million frozen dataclasses
    took 1.5-2.3 s to build on the development machine (four `object.__setattr__`
    calls each), a million named tuples built inside C about 0.3 s. Attributes
    and immutability are the same; it also unpacks and equals a plain tuple, and
    `line._replace(...)` stands in for `dataclasses.replace`.
    """

    line_no: int
    """1-based physical line number in the file (of the first line, for a CSV row spanning several)."""
    card_no: str | None
    secret: str
    expires_on: datetime.date | None
    """Only ever read from a CSV expiry column."""

    def __repr__(self) -> str:
        # Keeps the secret out of logs, tracebacks and assertion messages.
        return (
            f"CodeLine(line_no={self.line_no!r}, card_no={self.card_no!r}, "
            f"secret=<{len(self.secret)} characters>, expires_on={self.expires_on!r})"
        )


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that was not taken, and why; `reason` never contains the secret."""

    line_no: int
    code: str
    reason: str


class ProblemLog:
    """The problems of one file, bounded: the `limit` lowest line numbers, and how many there were in all.

    Problems may arrive slightly out of line order (a block's format-rule problems
    after its parse problems); a heap keeps the lowest line numbers whatever the order.
    """

    def __init__(self, limit: int | None = MAX_REPORTED_PROBLEMS) -> None:
        self.limit = limit
        self.total = 0
        # (-line_no, -arrival, problem): the highest line number kept is on top, to be pushed out first.
        self._kept: list[tuple[int, int, LineProblem]] = []

    def add(self, problem: LineProblem) -> None:
        self.note(problem.line_no, problem.code, problem.reason, problem)

    def note(self, line_no: int, code: str, reason: str, problem: LineProblem | None = None) -> None:
        """Count a problem; build and keep it only if it is among the lowest line numbers so far."""
        self.total += 1
        kept = self._kept
        if self.limit is None or len(kept) < self.limit:
            heapq.heappush(kept, (-line_no, -self.total, problem or LineProblem(line_no, code, reason)))
        elif kept and line_no < -kept[0][0]:
            heapq.heapreplace(kept, (-line_no, -self.total, problem or LineProblem(line_no, code, reason)))

    def count_more(self, how_many: int) -> None:
        """Count problems that are known to come after every kept one, without their details."""
        self.total += how_many

    @property
    def first(self) -> list[LineProblem]:
        """The kept problems in line order."""
        return [entry[2] for entry in sorted(self._kept, reverse=True)]


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The codes and problems of a file held in memory. Every non-blank data line is in exactly one of the lists."""

    encoding: str
    layout: str
    lines: list[CodeLine]
    problems: list[LineProblem]


class ImportFileError(BadInput):
    """The file as a whole cannot be imported: nothing in it was taken."""

    code = "import_file_invalid"


@dataclass(frozen=True)
class CodeSource:
    """A code file that can be read more than once, from its start each time (an import may check, then store).

    `chunks()` starts a new pass; `size` (bytes, when known) is for progress bars.
    """

    chunks: Callable[[], Iterator[bytes]]
    size: int | None = None

    @classmethod
    def of_bytes(cls, data: bytes) -> "CodeSource":
        return cls(partial(_chunks_of_bytes, data), len(data))

    @classmethod
    def of_path(cls, path: Path) -> "CodeSource":
        return cls(partial(_chunks_of_path, path), path.stat().st_size)

    @classmethod
    def of_file(cls, file: BinaryIO, size: int | None = None) -> "CodeSource":
        """A seekable file the caller keeps open (an upload's spooled temporary file)."""
        return cls(partial(_chunks_of_file, file), size)


def _chunks_of_bytes(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), READ_SIZE):
        yield data[start : start + READ_SIZE]


def _chunks_of_path(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        yield from _chunks_of_file(file)


def _chunks_of_file(file: BinaryIO) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(READ_SIZE):
        yield chunk


class CodeStream:
    """One pass over a code file: its codes in blocks, in line order, while `problems` collects the bad lines.

    `layout` is known once the first block is out, `encoding` once the pass is over
    (a file of plain ASCII reports "utf-8"). Iterate it once.
    """

    def __init__(self, source: CodeSource, *, layout: str, encoding: str | None, problems: ProblemLog) -> None:
        if layout != "auto" and layout not in LAYOUTS:
            raise ImportFileError(
                f"unknown layout {layout!r}; use one of auto, {', '.join(LAYOUTS)}",
                layout=layout,
                supported=["auto", *LAYOUTS],
            )
        self._decoder = _Decoder(encoding)
        self._source = source
        self._chosen_layout = layout
        self.layout = layout
        self.problems = problems
        self.bytes_read = 0

    @property
    def encoding(self) -> str:
        return self._decoder.name or "utf-8"

    def __iter__(self) -> Iterator[list[CodeLine]]:
        blocks = _line_blocks(self._counted(self._source.chunks()), self._decoder)
        first = _from_first_content(blocks)
        if first is None:
            raise _no_codes()
        auto = self._chosen_layout == "auto"
        self.layout = _detect_layout(first[1][0]) if auto else self._chosen_layout
        rest = chain([first], blocks)
        if self.layout == "csv":
            reader = _read_csv(rest, self.problems)
        elif self.layout == "pair":
            reader = _read_pairs(rest, self.problems)
        else:
            reader = _read_singles(rest, self.problems, reject_separators=auto)
        problems_before = self.problems.total
        found = False
        while True:
            with _gc_paused():
                block = next(reader, None)
            if block is None:
                break
            if block:
                found = True
                yield block
        if not found and self.problems.total == problems_before:
            raise _no_codes()

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes_read += len(chunk)
            yield chunk


def read_code_file(
    source: CodeSource, *, layout: str = "auto", encoding: str | None = None, problems: ProblemLog | None = None
) -> CodeStream:
    """Start a pass over a code file; see `parse_code_file` for the layouts."""
    return CodeStream(source, layout=layout, encoding=encoding, problems=problems or ProblemLog())


def parse_code_file(data: bytes, *, layout: str = "auto", encoding: str | None = None) -> ParsedFile:
    """Parse a code file held in memory, with every problem and without in-file duplicates.

    `layout` is "single" (the whole line is the secret), "pair" (`card_no,secret`),
    "csv" (a header naming the columns) or "auto", which decides from the first
    non-blank line: a recognised secret column name among separated fields means
    csv, any separator means pair, none means single. When single was guessed,
    a later line holding a separator is a problem; when the operator chose
    single, such a line is taken whole.

    A first line made only of recognised column names (such as `卡号,卡密`) is
    a header in every layout and is not taken as a code.
    """
    log = ProblemLog(limit=None)
    stream = read_code_file(CodeSource.of_bytes(data), layout=layout, encoding=encoding, problems=log)
    with _gc_paused():
        candidates = [line for block in stream for line in block]
        code_lines, duplicates = _drop_duplicates(candidates, with_card_numbers=stream.layout != "single")
    for duplicate in duplicates:
        log.add(duplicate)
    return ParsedFile(encoding=stream.encoding, layout=stream.layout, lines=code_lines, problems=log.first)


def keep_valid(
    check: Callable[[str | None, str], str | None], lines: list[CodeLine], log: ProblemLog
) -> list[CodeLine]:
    """The lines that pass `check` (a `CodeRule.checker()`); the others go to `log` as "format_rule" problems."""
    kept = []
    for line in lines:
        reason = check(line.card_no, line.secret)
        if reason is None:
            kept.append(line)
        else:
            log.note(line.line_no, ProblemCode.FORMAT_RULE, reason)
    return kept


# --- encoding and lines -------------------------------------------------------------------------


class _Undecodable(Exception):
    """Bytes of a chunk that do not decode; `good` is the part before them (to count lines)."""

    def __init__(self, good: bytes) -> None:
        self.good = good


class _Decoder:
    """Bytes to text chunk by chunk, choosing the encoding on the first bytes that need one."""

    def __init__(self, encoding: str | None) -> None:
        self.forced = encoding is not None
        self.name: str | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""  # the file's first bytes, until there are enough to tell a BOM
        self._started = False
        if encoding is not None:
            try:
                info = codecs.lookup(encoding)
                # bytes.decode refuses the codecs that are not text encodings (hex, base64, rot13...).
                if not getattr(info, "_is_text_encoding", True):
                    raise LookupError(encoding)
                self.name = info.name
            except LookupError:
                raise ImportFileError(
                    f"unknown encoding {encoding!r}; use one of {', '.join(SUPPORTED_ENCODINGS)}",
                    encoding=encoding,
                    supported=list(SUPPORTED_ENCODINGS),
                ) from None
            self._decoder = codecs.getincrementaldecoder(self.name)()

    def decode(self, data: bytes, *, final: bool) -> str:
        if self._head:
            data, self._head = self._head + data, b""
        if not self._started:
            if len(data) < len(codecs.BOM_UTF8) and not final and codecs.BOM_UTF8.startswith(data):
                self._head = data
                return ""
            self._started = True
            if self._decoder is None and data.startswith(codecs.BOM_UTF8):
                self.name = "utf-8-sig"
                self._decoder = codecs.getincrementaldecoder(self.name)()
            # A stray BOM (say, a UTF-8-with-BOM file read as plain "utf-8") would otherwise
            # become the first character of the first code.
            return self._decode(data, final).removeprefix("\ufeff")
        return self._decode(data, final)

    def _decode(self, data: bytes, final: bool) -> str:
        if self._decoder is None:
            if data.isascii():
                return data.decode("ascii")
            return self._choose(data, final)
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise _Undecodable(data[: max(exc.start, 0)]) from None

    def _choose(self, data: bytes, final: bool) -> str:
        for name in ("utf-8", "gb18030"):
            decoder = codecs.getincrementaldecoder(name)()
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError:
                continue
            self.name, self._decoder = name, decoder
            return text
        raise _unreadable()


def _unreadable(**details: object) -> ImportFileError:
    return ImportFileError(
        "the file's encoding is not readable; save it as UTF-8 (with or without BOM) or GBK (GB18030)",
        supported=list(SUPPORTED_ENCODINGS),
        **details,
    )


def _no_codes() -> ImportFileError:
    return ImportFileError("the file holds no codes")


def _breaks_in(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _line_blocks(chunks: Iterable[bytes], decoder: _Decoder) -> Iterator[tuple[int, list[str]]]:
    """The file's lines, a chunk's worth at a time, each block with the number of its first line.

    Lines end at \\n, \\r\\n and \\r only, so line numbers match what an editor shows:
    `str.splitlines` would also split on form feeds, \\x1c-\\x1e, U+0085 and U+2028/9.
    """
    carry = ""  # the start of a line whose end is in a later chunk
    line_no = 1  # of the line in `carry`

    def decoded(data: bytes, final: bool) -> str:
        try:
            text = decoder.decode(data, final=final)
        except _Undecodable as bad:
            raise _undecodable_line(decoder, line_no + _breaks_in(carry.encode() + bad.good)) from None
        if "\x00" in text:
            # A NUL character means a binary or UTF-16/32 file; its "lines" would be garbage.
            raise _unreadable(line_no=line_no + _breaks_in(text[: text.index("\x00")].encode()))
        return text

    for data in chain(chunks, [None]):
        text = carry + (decoded(data, False) if data is not None else decoded(b"", True))
        held = ""
        if "\r" in text:
            if data is not None and text.endswith("\r"):
                text, held = text[:-1], "\r"  # a \n may follow in the next chunk
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        carry = lines.pop() + held
        if data is None and carry:
            lines.append(carry)  # the last line, without a final newline
        if len(carry) > MAX_LINE_CHARS:
            raise ImportFileError(
                f"line {line_no + len(lines)} is longer than {MAX_LINE_CHARS} characters; is this a code file?",
                line_no=line_no + len(lines),
            )
        if lines:
            yield line_no, lines
            line_no += len(lines)


def _undecodable_line(decoder: _Decoder, line_no: int) -> ImportFileError:
    if decoder.forced:
        message = f"the file is not valid {decoder.name} (line {line_no})"
    else:
        message = (
            f"line {line_no} is not valid {decoder.name}, the encoding the start of the file is in; "
            "save the whole file as UTF-8 or GBK (GB18030)"
        )
    return ImportFileError(message, line_no=line_no, encoding=decoder.name, supported=list(SUPPORTED_ENCODINGS))


def _from_first_content(blocks: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]] | None:
    """The block holding the first non-blank line, cut to start there; None if every line is blank."""
    for start, lines in blocks:
        for index, line in enumerate(lines):
            if line.strip():
                return start + index, lines[index:]
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many tuples are built.

    Every few hundred allocations of container objects the collector runs, and
    its older generations rescan all the tuples built so far: that doubles the
    time of a million-line parse. Parsing creates no reference cycles, so nothing
    is lost by collecting afterwards. A stream pauses it while it builds each
    block: with the collector on, a stream of a million lines took four times as long.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- layouts ------------------------------------------------------------------------------------

# Builds a CodeLine from a (line_no, card_no, secret, expires_on) tuple inside C,
# without the Python-level NamedTuple.__new__.
_new_code_line = partial(tuple.__new__, CodeLine)
_line_no_of = itemgetter(0)
_secret_of = itemgetter(2)
_card_and_secret_of = itemgetter(1, 2)


def _column_name(field: str) -> str:
    """Normalise a header field: "Card No" and "card-no" both mean card_no."""
    return field.strip().strip('"').strip().lower().replace(" ", "_").replace("-", "_")


def _split_fields(line: str) -> list[str]:
    if "\t" in line or "，" in line:
        line = line.replace("\t", ",").replace("，", ",")
    return line.split(",")


def _looks_like_header(fields: Sequence[str]) -> bool:
    """Every field is a recognised column name and one of them names the secret."""
    names = [_column_name(field) for field in fields]
    return any(name in SECRET_COLUMNS for name in names) and all(name in _KNOWN_COLUMNS for name in names if name)


def _detect_layout(first_line: str) -> str:
    # Stripped first: a trailing tab from a spreadsheet does not make a pair.
    first_line = first_line.strip()
    if not any(sep in first_line for sep in _SEPARATORS):
        return "single"
    if any(_column_name(field) in SECRET_COLUMNS for field in _split_fields(first_line)):
        return "csv"
    return "pair"


Blocks = Iterable[tuple[int, list[str]]]
"""Lines in blocks, each with the number of its first line; the first line of the first block is the file's
first non-blank line."""


def _read_singles(blocks: Blocks, log: ProblemLog, *, reject_separators: bool) -> Iterator[list[CodeLine]]:
    """The whole stripped line is the secret; built with C-level iterators for speed."""
    first = True
    for start, lines in blocks:
        skip = 0
        if first:
            first = False
            skip = 1 if _looks_like_header([lines[0]]) else 0
        stripped = map(str.strip, lines[skip:] if skip else lines)
        numbered = zip(count(start + skip), repeat(None), stripped, repeat(None))
        candidates: list[CodeLine] = list(map(_new_code_line, filter(_secret_of, numbered)))
        if reject_separators:
            joined = "".join(lines)
            if any(sep in joined for sep in _SEPARATORS):
                candidates = _without_separators(candidates, log)
        yield candidates


def _without_separators(candidates: list[CodeLine], log: ProblemLog) -> list[CodeLine]:
    kept: list[CodeLine] = []
    for candidate in candidates:
        if any(sep in candidate.secret for sep in _SEPARATORS):
            log.note(
                candidate.line_no,
                ProblemCode.MALFORMED_LINE,
                "the line holds a separator (comma or tab), but the file's first line "
                "has none: one code per line was expected",
            )
        else:
            kept.append(candidate)
    return kept


def _read_pairs(blocks: Blocks, log: ProblemLog) -> Iterator[list[CodeLine]]:
    """`card_no,secret` lines; a tab or a full-width comma separates as well as a comma."""
    first = True
    for start, lines in blocks:
        skip = 0
        if first:
            first = False
            skip = 1 if _looks_like_header(_split_fields(lines[0])) else 0
        yield _pairs_of(start + skip, lines[skip:] if skip else lines, log)


def _pairs_of(start: int, lines: list[str], log: ProblemLog) -> list[CodeLine]:
    candidates: list[CodeLine] = []
    for line_no, line in enumerate(lines, start):
        fields = _split_fields(line)
        if len(fields) > 2:
            fields = _without_trailing_empties(fields)
            if not fields:
                continue
        if len(fields) == 2:
            card_no = fields[0].strip()
            secret = fields[1].strip()
            if secret:
                candidates.append(_new_code_line((line_no, card_no or None, secret, None)))
            elif card_no:
                log.note(line_no, ProblemCode.EMPTY_SECRET, "the secret is empty")
            # Both fields empty: a line of separators only counts as blank.
        elif len(fields) == 1:
            if fields[0].strip():
                log.note(
                    line_no,
                    ProblemCode.MALFORMED_LINE,
                    "expected a card number and a secret separated by a comma or tab, found one field",
                )
        else:
            log.note(
                line_no, ProblemCode.TOO_MANY_FIELDS, f"expected 2 fields (card number, secret), found {len(fields)}"
            )
    return candidates


def _without_trailing_empties(fields: list[str]) -> list[str]:
    """Spreadsheets pad short rows with separators; trailing empty fields are not fields."""
    end = len(fields)
    while end and not fields[end - 1].strip():
        end -= 1
    return fields[:end]


def _read_csv(blocks: Blocks, log: ProblemLog) -> Iterator[list[CodeLine]]:
    """A header row naming the columns, then one row per code, read with the csv module."""
    blocks = iter(blocks)
    start, first_lines = next(iter(blocks))
    header_line = first_lines[0]
    delimiter = max(_SEPARATORS, key=header_line.count)
    lines = chain(first_lines, chain.from_iterable(lines for _, lines in blocks))
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
    try:
        header = next(reader)
        columns = _resolve_columns(header)
        width = len(header)
        # Most files share a handful of expiry dates; parse each text once.
        dates: dict[str, datetime.date | None] = {}
        candidates: list[CodeLine] = []
        consumed = reader.line_num
        for row in reader:
            # The reader drops line terminators, so a quoted field left open swallows
            # the following lines; the row's span tells us.
            line_no, last_line_no = start + consumed, start + reader.line_num - 1
            consumed = reader.line_num
            if len(row) > width:
                row = _without_trailing_empties(row)
            if len(row) != width or last_line_no != line_no:
                if any(field.strip() for field in row):
                    log.add(_misshapen_row(line_no, last_line_no, len(row), width))
                continue
            if len(dates) > _DATE_CACHE:
                dates.clear()
            outcome = _csv_row(line_no, row, columns, dates)
            if isinstance(outcome, LineProblem):
                log.add(outcome)
            elif outcome is not None:
                candidates.append(outcome)
                if len(candidates) >= _CSV_BLOCK:
                    yield candidates
                    candidates = []
    except csv.Error as exc:
        # In the default (non-strict) dialect the only error left is an oversized
        # field, from a quote left open; its message holds no content.
        where = start + reader.line_num - 1
        raise ImportFileError(f"line {where}: the CSV cannot be read ({exc})", line_no=where) from None
    yield candidates


def _resolve_columns(header: list[str]) -> tuple[int, int | None, int | None]:
    names = [_column_name(field) for field in header]
    looks_like_header = any(name in _KNOWN_COLUMNS for name in names)
    # Only echo the first line when it is plainly a header: in a file wrongly
    # imported as csv, the first line is a code and its secret must not leak.
    seen = {"header": header} if looks_like_header else {"fields": len(header)}

    def one_of(columns: frozenset[str], what: str) -> int | None:
        found = [index for index, name in enumerate(names) if name in columns]
        if len(found) > 1:
            raise ImportFileError(
                f"the header names more than one {what} column: {', '.join(header[i] for i in found)}",
                **seen,
            )
        return found[0] if found else None

    secret_at = one_of(SECRET_COLUMNS, "secret")
    if secret_at is None:
        wanted = ", ".join(sorted(SECRET_COLUMNS))
        if looks_like_header:
            message = f"the header {', '.join(header)} has no secret column; name it one of {wanted}"
        else:
            message = (
                f"the first line should be a header naming a secret column ({wanted}); "
                f"none of its {len(header)} fields is a recognised column name"
            )
        raise ImportFileError(message, expected=sorted(SECRET_COLUMNS), **seen)
    return secret_at, one_of(CARD_COLUMNS, "card number"), one_of(EXPIRY_COLUMNS, "expiry")


def _misshapen_row(line_no: int, last_line_no: int, fields: int, width: int) -> LineProblem:
    if last_line_no != line_no:
        reason = f"a quoted field runs on to line {last_line_no}; is a quote left open?"
    else:
        reason = f"the row has {fields} fields, the header has {width}"
    return LineProblem(line_no, ProblemCode.MALFORMED_LINE, reason)


def _csv_row(
    line_no: int,
    row: list[str],
    columns: tuple[int, int | None, int | None],
    dates: dict[str, datetime.date | None],
) -> CodeLine | LineProblem | None:
    """The code of one row of the header's width, its problem, or None for a row of empty fields."""
    secret_at, card_at, expiry_at = columns
    secret = row[secret_at].strip()
    card_no = (row[card_at].strip() or None) if card_at is not None else None
    if not secret:
        if not any(field.strip() for field in row):
            return None
        return LineProblem(line_no, ProblemCode.EMPTY_SECRET, "the secret is empty")
    expires_on = None
    if expiry_at is not None and (raw_date := row[expiry_at].strip()):
        try:
            expires_on = dates[raw_date]
        except KeyError:
            expires_on = dates[raw_date] = _parse_date(raw_date)
        if expires_on is None:
            # The value is not echoed: in a file with shifted columns it may be a secret.
            return LineProblem(
                line_no,
                ProblemCode.BAD_DATE,
                "the expiry is not a date; write it as YYYY-MM-DD or YYYY/MM/DD",
            )
    return _new_code_line((line_no, card_no, secret, expires_on))


def _parse_date(value: str) -> datetime.date | None:
    """YYYY-MM-DD or YYYY/MM/DD (month and day may have one digit, as spreadsheets write them)."""
    parts = value.split("-" if "-" in value else "/")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    year, month, day = parts
    if len(year) != 4 or not (1 <= len(month) <= 2 and 1 <= len(day) <= 2):
        return None
    try:
        return datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None


# --- duplicates ---------------------------------------------------------------------------------


def _drop_duplicates(
    candidates: list[CodeLine], *, with_card_numbers: bool
) -> tuple[list[CodeLine], list[LineProblem]]:
    """Keep the first of each (card_no, secret); later copies become problems naming the first line."""
    # Without card numbers the secret alone is the key, which spares a million key tuples.
    key_of = _card_and_secret_of if with_card_numbers else _secret_of
    # The usual file has no duplicates, and a set is built in half the time of a dict.
    if len(set(map(key_of, candidates))) == len(candidates):
        return candidates, []
    # Built from the end, so the earliest line of each key is written last and wins.
    first_line_of = dict(zip(map(key_of, reversed(candidates)), map(_line_no_of, reversed(candidates)), strict=True))
    code_lines: list[CodeLine] = []
    problems: list[LineProblem] = []
    for candidate in candidates:
        first = first_line_of[key_of(candidate)]
        if first == candidate.line_no:
            code_lines.append(candidate)
        else:
            if candidate.card_no:
                reason = f"the same card number and secret already appear on line {first}"
            else:
                reason = f"the same code already appears on line {first}"
            problems.append(LineProblem(candidate.line_no, ProblemCode.DUPLICATE_IN_FILE, reason))
    return code_lines, problems
