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

Encoding: `file_encoding`; layouts: `file_layouts`; what comes out: `code_lines`.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import BinaryIO, Final

from kaquan.inventory.intake.code_lines import MAX_REPORTED_PROBLEMS as MAX_REPORTED_PROBLEMS
from kaquan.inventory.intake.code_lines import CodeLine as CodeLine
from kaquan.inventory.intake.code_lines import ImportFileError as ImportFileError
from kaquan.inventory.intake.code_lines import LineProblem as LineProblem
from kaquan.inventory.intake.code_lines import ProblemCode as ProblemCode
from kaquan.inventory.intake.code_lines import ProblemLog as ProblemLog
from kaquan.inventory.intake.file_encoding import SUPPORTED_ENCODINGS as SUPPORTED_ENCODINGS
from kaquan.inventory.intake.file_encoding import Decoder, from_first_content, gc_paused, line_blocks, no_codes
from kaquan.inventory.intake.file_layouts import CARD_COLUMNS as CARD_COLUMNS
from kaquan.inventory.intake.file_layouts import EXPIRY_COLUMNS as EXPIRY_COLUMNS
from kaquan.inventory.intake.file_layouts import LAYOUTS as LAYOUTS
from kaquan.inventory.intake.file_layouts import SECRET_COLUMNS as SECRET_COLUMNS
from kaquan.inventory.intake.file_layouts import detect_layout, drop_duplicates, read_csv, read_pairs, read_singles

READ_SIZE: Final = 64 * 1024
"""Bytes read at a time; a block of lines never holds more than one such chunk's worth."""


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The codes and problems of a file held in memory. Every non-blank data line is in exactly one of the lists."""

    encoding: str
    layout: str
    lines: list[CodeLine]
    problems: list[LineProblem]


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
        self._decoder = Decoder(encoding)
        self._source = source
        self._chosen_layout = layout
        self.layout = layout
        self.problems = problems
        self.bytes_read = 0

    @property
    def encoding(self) -> str:
        return self._decoder.name or "utf-8"

    def __iter__(self) -> Iterator[list[CodeLine]]:
        blocks = line_blocks(self._counted(self._source.chunks()), self._decoder)
        first = from_first_content(blocks)
        if first is None:
            raise no_codes()
        auto = self._chosen_layout == "auto"
        self.layout = detect_layout(first[1][0]) if auto else self._chosen_layout
        rest = chain([first], blocks)
        if self.layout == "csv":
            reader = read_csv(rest, self.problems)
        elif self.layout == "pair":
            reader = read_pairs(rest, self.problems)
        else:
            reader = read_singles(rest, self.problems, reject_separators=auto)
        problems_before = self.problems.total
        found = False
        while True:
            with gc_paused():
                block = next(reader, None)
            if block is None:
                break
            if block:
                found = True
                yield block
        if not found and self.problems.total == problems_before:
            raise no_codes()

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
    with gc_paused():
        candidates = [line for block in stream for line in block]
        code_lines, duplicates = drop_duplicates(candidates, with_card_numbers=stream.layout != "single")
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
