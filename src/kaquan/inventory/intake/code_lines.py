"""What a code file reads into: code lines, and the problems of the lines that are not codes.

Secrets never appear in a problem's reason: reasons reach logs and screens.
"""

import datetime
import heapq
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from kaquan.kit.errors import BadInput

MAX_REPORTED_PROBLEMS: Final = 200
"""Problems kept with their line numbers; beyond them only a count (an all-invalid file has millions)."""


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


class ImportFileError(BadInput):
    """The file as a whole cannot be imported: nothing in it was taken."""

    code = "import_file_invalid"
