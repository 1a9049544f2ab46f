"""The layouts of a code file: one code per line, `card_no,secret` pairs, or CSV with a header.

Every layout reads blocks of numbered lines and yields blocks of code lines,
noting each bad line in the problem log. Speed: a million single-layout lines
parse in about a second; that layout runs almost entirely inside C (`map`,
`filter`, `zip`, `dict`), and no layout uses a per-line regex.
"""

import csv
import datetime
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import chain, count, repeat
from operator import itemgetter
from typing import Final

from kaquan.inventory.intake.code_lines import CodeLine, ImportFileError, LineProblem, ProblemCode, ProblemLog

LAYOUTS: Final = ("single", "pair", "csv")
SECRET_COLUMNS: Final = frozenset({"secret", "password", "code", "pin", "卡密", "密码"})
CARD_COLUMNS: Final = frozenset({"card_no", "card", "card_number", "卡号"})
EXPIRY_COLUMNS: Final = frozenset({"expires_on", "expiry", "expire", "有效期", "过期时间"})
_KNOWN_COLUMNS: Final = SECRET_COLUMNS | CARD_COLUMNS | EXPIRY_COLUMNS

# Operators paste from spreadsheets (tab), type Chinese punctuation (full-width
# comma) or export CSV (comma); all three separate the fields of a line.
_SEPARATORS: Final = (",", "\t", "，")
_CSV_BLOCK: Final = 10_000
_DATE_CACHE: Final = 1_000


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


def detect_layout(first_line: str) -> str:
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


def read_singles(blocks: Blocks, log: ProblemLog, *, reject_separators: bool) -> Iterator[list[CodeLine]]:
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


def read_pairs(blocks: Blocks, log: ProblemLog) -> Iterator[list[CodeLine]]:
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


def read_csv(blocks: Blocks, log: ProblemLog) -> Iterator[list[CodeLine]]:
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


def drop_duplicates(candidates: list[CodeLine], *, with_card_numbers: bool) -> tuple[list[CodeLine], list[LineProblem]]:
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
