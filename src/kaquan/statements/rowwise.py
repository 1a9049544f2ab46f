"""A statement read row by row in Python: the formats whose files stay small (Stripe, marketplaces, agents…)."""

from collections.abc import Callable, Iterator
from typing import Any, Final

from kaquan.statements.lines import StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import Columns

Record = tuple[int, list[Any]]  # CSV cells are text; spreadsheet cells arrive typed
Convert = Callable[[int, list[Any]], StatementLine | None]
NO_CELL: Final = ""


class RowStatement:
    """Rows converted one by one by `convert` (None: a row that is no line); `finish` checks the whole at the end."""

    def __init__(
        self,
        header: StatementHeader,
        columns: Columns,
        records: Iterator[Record],
        convert: Convert,
        *,
        finish: Callable[[], None] | None = None,
        ragged: bool = False,
    ) -> None:
        self.header = header
        self._columns = columns
        self._records = records
        self._convert = convert
        self._finish = finish
        self._ragged = ragged  # spreadsheets drop empty trailing cells: a short row is padded, not refused
        self._read = False

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        if self._read:
            raise RuntimeError("a statement is read once")
        self._read = True
        width = self._columns.width
        convert = self._convert
        batch: list[StatementLine] = []
        for line, cells in self._records:
            if len(cells) != width:
                if not self._ragged or len(cells) > width:
                    raise StatementRejected(
                        f"the row has {len(cells)} columns, the header {width} (a truncated or broken row)", line=line
                    )
                cells = cells + [NO_CELL] * (width - len(cells))
            converted = convert(line, cells)
            if converted is not None:
                batch.append(converted)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if self._finish is not None:
            self._finish()
        if batch:
            yield batch


def first_record(records: Iterator[Record], what: str) -> Record:
    """The header row; StatementRejected for an empty file."""
    first = next(records, None)
    if first is None:
        raise StatementRejected(f"the file is empty, not {what}")
    return first
