"""Read an operator's code file into code lines and per-line problems.

A code file is what operators export from a supplier's portal or a spreadsheet:
one code per line, `card_no,secret` pairs, or a CSV with a header. Whole-file
problems (unreadable encoding, no codes, no secret column) raise
`ImportFileError`; everything wrong with a single line becomes a `LineProblem`
so the operator can fix the file by line number and retry.

Secrets never appear in a problem's reason or an error message: those reach
logs and screens. Nor do card numbers, though they are not secret: in a file
with shifted or swapped columns, what stands in the card column is a secret.

Speed: a million single-layout lines parse in about a second. That layout runs
almost entirely inside C (`map`, `filter`, `zip`, `dict`), no layout uses a
per-line regex, and the cyclic garbage collector is paused while the lines
are built (see `_gc_paused`).
"""

import codecs
import csv
import datetime
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from itertools import count, islice, repeat
from operator import attrgetter, itemgetter
from typing import Final, NamedTuple

from kaquan.kit.errors import BadInput

SUPPORTED_ENCODINGS: Final = ("utf-8", "utf-8-sig", "gb18030")
LAYOUTS: Final = ("single", "pair", "csv")

SECRET_COLUMNS: Final = frozenset({"secret", "password", "code", "pin", "卡密", "密码"})
CARD_COLUMNS: Final = frozenset({"card_no", "card", "card_number", "卡号"})
EXPIRY_COLUMNS: Final = frozenset({"expires_on", "expiry", "expire", "有效期", "过期时间"})
_KNOWN_COLUMNS: Final = SECRET_COLUMNS | CARD_COLUMNS | EXPIRY_COLUMNS

# Operators paste from spreadsheets (tab), type Chinese punctuation (full-width
# comma) or export CSV (comma); all three separate the fields of a line.
_SEPARATORS: Final = (",", "\t", "，")


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


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The codes and problems of one file. Every non-blank data line is in exactly one of the two lists."""

    encoding: str
    layout: str
    lines: list[CodeLine]
    problems: list[LineProblem]


class ImportFileError(BadInput):
    """The file as a whole cannot be imported: nothing in it was taken."""

    code = "import_file_invalid"


def parse_code_file(data: bytes, *, layout: str = "auto", encoding: str | None = None) -> ParsedFile:
    """Parse a code file.

    `layout` is "single" (the whole line is the secret), "pair" (`card_no,secret`),
    "csv" (a header naming the columns) or "auto", which decides from the first
    non-blank line: a recognised secret column name among separated fields means
    csv, any separator means pair, none means single. When single was guessed,
    a later line holding a separator is a problem; when the operator chose
    single, such a line is taken whole.

    A first line made only of recognised column names (such as `卡号,卡密`) is
    a header in every layout and is not taken as a code.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ImportFileError(
            f"unknown layout {layout!r}; use one of auto, {', '.join(LAYOUTS)}",
            layout=layout,
            supported=["auto", *LAYOUTS],
        )
    text, used_encoding = _decode(data, encoding)
    lines = _split_lines(text)
    start = _first_content_index(lines)
    if start is None:
        raise _no_codes()
    chosen = _detect_layout(lines[start]) if layout == "auto" else layout

    with _gc_paused():
        if chosen == "csv":
            candidates, problems = _read_csv(lines, start)
        elif chosen == "pair":
            candidates, problems = _read_pairs(lines, start)
        else:
            guessed_single = layout == "auto" and any(sep in text for sep in _SEPARATORS)
            candidates, problems = _read_singles(lines, start, reject_separators=guessed_single)
        if not candidates and not problems:
            raise _no_codes()
        code_lines, duplicates = _drop_duplicates(candidates, with_card_numbers=chosen != "single")
        if duplicates:
            problems.extend(duplicates)
            problems.sort(key=attrgetter("line_no"))
    return ParsedFile(encoding=used_encoding, layout=chosen, lines=code_lines, problems=problems)


# --- encoding and lines -------------------------------------------------------------------------


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    """Decode with the named encoding, or try UTF-8 with BOM, UTF-8, then GB18030 (which reads GBK)."""
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
            text = data.decode(name)
        except LookupError:
            raise ImportFileError(
                f"unknown encoding {encoding!r}; use one of {', '.join(SUPPORTED_ENCODINGS)}",
                encoding=encoding,
                supported=list(SUPPORTED_ENCODINGS),
            ) from None
        except UnicodeError as exc:
            where = f" (first bad byte at offset {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
            raise ImportFileError(
                f"the file is not valid {name}{where}",
                encoding=name,
                supported=list(SUPPORTED_ENCODINGS),
            ) from None
    elif data.startswith(codecs.BOM_UTF8):
        text, name = _try_decode(data, "utf-8-sig")
    else:
        try:
            text, name = _try_decode(data, "utf-8")
        except ImportFileError:
            text, name = _try_decode(data, "gb18030")
    # A NUL character means a binary or UTF-16/32 file; its "lines" would be garbage.
    if "\x00" in text:
        raise _unreadable()
    # A stray BOM (say, a UTF-8-with-BOM file read as plain "utf-8") would otherwise
    # become the first character of the first code.
    return text.removeprefix("\ufeff"), name


def _try_decode(data: bytes, name: str) -> tuple[str, str]:
    try:
        return data.decode(name), name
    except UnicodeDecodeError:
        raise _unreadable() from None


def _unreadable() -> ImportFileError:
    return ImportFileError(
        "the file's encoding is not readable; save it as UTF-8 (with or without BOM) or GBK (GB18030)",
        supported=list(SUPPORTED_ENCODINGS),
    )


def _no_codes() -> ImportFileError:
    return ImportFileError("the file holds no codes")


def _split_lines(text: str) -> list[str]:
    """Split on \\n, \\r\\n and \\r only, so line numbers match what an editor shows.

    `str.splitlines` would also split on form feeds, \\x1c-\\x1e, U+0085 and
    U+2028/9, which shifts every later line number.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the final newline ends the last line; it does not start another
    return lines


def _first_content_index(lines: Sequence[str]) -> int | None:
    for index, line in enumerate(lines):
        if line.strip():
            return index
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of tuples are built.

    Every few hundred allocations of container objects the collector runs, and
    its older generations rescan all the tuples built so far: that doubles the
    time of a million-line parse. Parsing creates no reference cycles, so nothing
    is lost by collecting afterwards.
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


def _read_singles(lines: list[str], start: int, *, reject_separators: bool) -> tuple[list[CodeLine], list[LineProblem]]:
    """The whole stripped line is the secret; built with C-level iterators for speed."""
    if _looks_like_header([lines[start]]):
        start += 1
    stripped = map(str.strip, islice(lines, start, None))
    numbered = zip(count(start + 1), repeat(None), stripped, repeat(None))
    candidates: list[CodeLine] = list(map(_new_code_line, filter(_secret_of, numbered)))
    problems: list[LineProblem] = []
    if reject_separators:
        kept: list[CodeLine] = []
        for candidate in candidates:
            if any(sep in candidate.secret for sep in _SEPARATORS):
                problems.append(
                    LineProblem(
                        candidate.line_no,
                        ProblemCode.MALFORMED_LINE,
                        "the line holds a separator (comma or tab), but the file's first line "
                        "has none: one code per line was expected",
                    )
                )
            else:
                kept.append(candidate)
        candidates = kept
    return candidates, problems


def _read_pairs(lines: list[str], start: int) -> tuple[list[CodeLine], list[LineProblem]]:
    """`card_no,secret` lines; a tab or a full-width comma separates as well as a comma."""
    if _looks_like_header(_split_fields(lines[start])):
        start += 1
    candidates: list[CodeLine] = []
    problems: list[LineProblem] = []
    for line_no, line in enumerate(islice(lines, start, None), start + 1):
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
                problems.append(LineProblem(line_no, ProblemCode.EMPTY_SECRET, "the secret is empty"))
            # Both fields empty: a line of separators only counts as blank.
        elif len(fields) == 1:
            if fields[0].strip():
                problems.append(
                    LineProblem(
                        line_no,
                        ProblemCode.MALFORMED_LINE,
                        "expected a card number and a secret separated by a comma or tab, found one field",
                    )
                )
        else:
            problems.append(
                LineProblem(
                    line_no,
                    ProblemCode.TOO_MANY_FIELDS,
                    f"expected 2 fields (card number, secret), found {len(fields)}",
                )
            )
    return candidates, problems


def _without_trailing_empties(fields: list[str]) -> list[str]:
    """Spreadsheets pad short rows with separators; trailing empty fields are not fields."""
    end = len(fields)
    while end and not fields[end - 1].strip():
        end -= 1
    return fields[:end]


def _read_csv(lines: list[str], start: int) -> tuple[list[CodeLine], list[LineProblem]]:
    """A header row naming the columns, then one row per code, read with the csv module."""
    header_line = lines[start]
    delimiter = max(_SEPARATORS, key=header_line.count)
    reader = csv.reader(islice(lines, start, None), delimiter=delimiter, skipinitialspace=True)
    try:
        header = next(reader)
        columns = _resolve_columns(header)
        width = len(header)
        # Most files share a handful of expiry dates; parse each text once.
        dates: dict[str, datetime.date | None] = {}
        candidates: list[CodeLine] = []
        problems: list[LineProblem] = []
        consumed = reader.line_num
        for row in reader:
            # The reader drops line terminators, so a quoted field left open swallows
            # the following lines; the row's span tells us.
            line_no, last_line_no = start + consumed + 1, start + reader.line_num
            consumed = reader.line_num
            if len(row) > width:
                row = _without_trailing_empties(row)
            if len(row) != width or last_line_no != line_no:
                if any(field.strip() for field in row):
                    problems.append(_misshapen_row(line_no, last_line_no, len(row), width))
                continue
            outcome = _csv_row(line_no, row, columns, dates)
            if isinstance(outcome, LineProblem):
                problems.append(outcome)
            elif outcome is not None:
                candidates.append(outcome)
    except csv.Error as exc:
        # In the default (non-strict) dialect the only error left is an oversized
        # field, from a quote left open; its message holds no content.
        raise ImportFileError(
            f"line {start + reader.line_num}: the CSV cannot be read ({exc})", line_no=start + reader.line_num
        ) from None
    return candidates, problems


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
