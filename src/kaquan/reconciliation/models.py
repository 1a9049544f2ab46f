"""Reconciliation's tables: statements imported, their lines, and one result per line and per kaquan record.

`reconciliation_lines` holds a counterparty's lines once each: `(source,
identity, occurrence)` is unique, where `occurrence` counts earlier lines of the
same file with the same identity (0 for the first). Storing a file again, or a
file whose period overlaps one already stored, adds only what is new; a line
that repeats inside one file is kept with occurrence 1, 2, … and classed
`duplicate_line`.

Each statement line and each kaquan payment or refund in a matched period
ends in exactly one class, in exactly one row: a line and a record that agree
in one compact row of `reconciliation_matches` (line, record, day: nobody
needs to look at them, and a million of them are most of a day), everything
else in `reconciliation_items`, finance's worklist (a difference, a pair in
one row together). A line's row is unique by key; a record's is unique
because matching a source is serialized (one advisory lock per source, shared
with annotating and resolving) and replaces the rows of every record it
places: a unique key over the records cost as much to keep up as the
matching itself.
"""

from datetime import date, datetime
from typing import Literal, get_args

from sqlalchemy import CheckConstraint, Date, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime, block_range_index, byte_ordered, partial_index

LINE_KINDS = ("payment", "refund", "payout", "fee", "adjustment")
ClassName = Literal[
    "matched",
    "missing_in_statement",
    "missing_in_kaquan",
    "amount_mismatch",
    "duplicate_line",
    "refund_missing_in_statement",
    "refund_missing_in_kaquan",
    "refund_amount_mismatch",
    "status_mismatch",
    "fee_mismatch",
    "timing",
]
StateName = Literal["open", "annotated", "resolved", "auto"]
CLASSES: tuple[str, ...] = get_args(ClassName)
STATES: tuple[str, ...] = get_args(StateName)
RECORD_KINDS = ("payment", "refund")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StatementImport(Base):
    """One statement file as it was imported: what it covers, who brought it, and what became of its lines."""

    __tablename__ = "reconciliation_statements"
    __table_args__ = (UniqueConstraint("source", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))  # hex digest of the file's bytes
    filename: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    lines_read: Mapped[int] = mapped_column(Integer)
    lines_new: Mapped[int] = mapped_column(Integer)
    lines_known: Mapped[int] = mapped_column(Integer)  # stored before, by an overlapping file
    lines_repeated: Mapped[int] = mapped_column(Integer)  # identity seen earlier in the same file
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StatementLineRow(Base):
    """One line of a counterparty's statement, stored once; `business_day` is its day in the source's time zone."""

    __tablename__ = "reconciliation_lines"
    __table_args__ = (
        UniqueConstraint("source", "identity", "occurrence"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("occurrence >= 0", name="occurrence_not_negative"),
        CheckConstraint(_known("kind", LINE_KINDS), name="kind_known"),
        # A file's lines go in together, in the file's (day) order: a block-range index on PostgreSQL costs next
        # to nothing to keep up, where a B-tree took a write per line (docs/reconciliation.md).
        block_range_index("ix_reconciliation_lines_source_day", "source", "business_day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    statement_id: Mapped[int] = mapped_column(BigId)  # not indexed: a million-line import maintains few indexes
    source: Mapped[str] = mapped_column(byte_ordered(64))  # the unique key's columns: see `byte_ordered`
    identity: Mapped[str] = mapped_column(byte_ordered(160))
    occurrence: Mapped[int] = mapped_column(Integer)
    line_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    business_day: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(Integer)
    fee_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    merchant_ref: Mapped[str] = mapped_column(String(128))
    counterparty_ref: Mapped[str] = mapped_column(String(128))
    refund_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))


class Difference(Base):
    """What matching found for one statement line, one kaquan record, or a pair of them that differ; finance's
    worklist (a pair that agrees is a `MatchedPair`, but for a marketplace store's, kept here for its payouts).

    `state` is `auto` for what needs nobody (a store's matched pair or commission line, a timing difference
    still waiting for the next day's bill), else `open` until finance annotates
    (`annotated`) or resolves it (`resolved`). Re-matching a period rewrites
    `auto` and `open` rows and leaves annotated and resolved ones as they are.
    """

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        CheckConstraint(_known("class_", CLASSES), name="class_known"),
        CheckConstraint(_known("state", STATES), name="state_known"),
        CheckConstraint("line_id IS NOT NULL OR record_ref IS NOT NULL", name="line_or_record"),
        UniqueConstraint("line_id"),  # NULLs are distinct: rows without a line do not collide
        # A block-range index on PostgreSQL: a period's items go in together, and a B-tree kept up row by row
        # over a million matched pairs was most of matching's time (docs/reconciliation.md).
        block_range_index("ix_reconciliation_items_source_day", "source", "business_day"),
        partial_index("ix_reconciliation_items_worklist", "state", "business_day", where="state <> 'auto'"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    business_day: Mapped[date] = mapped_column(Date)
    class_: Mapped[str] = mapped_column(String(32))
    line_id: Mapped[int | None] = mapped_column(BigId)
    record_kind: Mapped[str | None] = mapped_column(String(16))  # "payment" or "refund"
    record_ref: Mapped[str | None] = mapped_column(String(128))  # payment token or refund number
    currency: Mapped[str] = mapped_column(String(3))
    expected_minor: Mapped[int | None] = mapped_column(Integer)  # what kaquan recorded
    found_minor: Mapped[int | None] = mapped_column(Integer)  # what the statement says
    expected_fee_minor: Mapped[int | None] = mapped_column(Integer)
    found_fee_minor: Mapped[int | None] = mapped_column(Integer)
    expected_status: Mapped[str | None] = mapped_column(String(20))  # kaquan's status of the record
    found_status: Mapped[str | None] = mapped_column(String(32))  # the status the statement prints
    line_kind: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(1000), default="")
    resolution: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ledger_reference: Mapped[str | None] = mapped_column(String(128))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MatchedPair(Base):
    """A statement line and the kaquan record it agrees with (class `matched`, state `auto`), kept compact.

    Amount, currency, fee and status agree by definition, so the line holds every figure; the day is the
    record's, as a pair's item has it.
    """

    __tablename__ = "reconciliation_matches"
    __table_args__ = (block_range_index("ix_reconciliation_matches_source_day", "source", "business_day"),)

    line_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(64))
    business_day: Mapped[date] = mapped_column(Date)
    record_kind: Mapped[str] = mapped_column(String(16))  # "payment" or "refund"
    record_ref: Mapped[str] = mapped_column(String(128))  # payment token or refund number


class MatchedRun(Base):
    """Plain matches kept as a run of line ids: every line of `source` filed under `business_day` whose id lies
    in [first_line_id, last_line_id] is a payment line that matched the payment its merchant reference names
    (class `matched`, state `auto`, the pair's day the line's). `lines` counts them.

    A plain match is a payment line naming a payment no other line names, of the same day, agreeing with it
    (`plain_matches`): nearly every line of a day's bill. A day's million pairs are a few thousand runs,
    where a row each cost seconds to write.
    """

    __tablename__ = "reconciliation_match_runs"
    __table_args__ = (
        CheckConstraint("first_line_id <= last_line_id", name="ordered"),
        CheckConstraint("lines > 0", name="not_empty"),
        Index("ix_reconciliation_match_runs_source_day", "source", "business_day"),
    )

    first_line_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    last_line_id: Mapped[int] = mapped_column(BigId)
    source: Mapped[str] = mapped_column(String(64))
    business_day: Mapped[date] = mapped_column(Date)
    lines: Mapped[int] = mapped_column(Integer)


# The tables as Core sees them, for the set-based statements of importing and matching.
STATEMENTS: Table = StatementImport.__table__  # type: ignore[assignment]
LINES: Table = StatementLineRow.__table__  # type: ignore[assignment]
ITEMS: Table = Difference.__table__  # type: ignore[assignment]
MATCHES: Table = MatchedPair.__table__  # type: ignore[assignment]
RUNS: Table = MatchedRun.__table__  # type: ignore[assignment]


class SavedMapping(Base):
    """A column mapping finance saved once for a generic CSV/XLSX source: its statements import as generic:<name>.

    `mapping` is the `statements.ColumnMapping` as JSON, checked when it is saved.
    """

    __tablename__ = "reconciliation_mappings"

    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    mapping: Mapped[str] = mapped_column(String(8000))
    saved_by: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime())


BILL_FETCH_STATES = ("waiting", "done", "failed")


class BillFetch(Base):
    """The daily bill of one gateway for one day: fetched, imported and matched once, retried until it is.

    `waiting` until the worker's next attempt (`next_at`), `done` with the
    statement it became, or `failed` after the last attempt; `attempts` and
    `last_error` (an error code and message, never a secret) are what the
    console shows.
    """

    __tablename__ = "reconciliation_bill_fetches"
    __table_args__ = (
        UniqueConstraint("gateway", "day"),
        CheckConstraint(_known("state", BILL_FETCH_STATES), name="state_known"),
        Index("ix_reconciliation_bill_fetches_due", "state", "next_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(500), default="")
    statement_id: Mapped[int | None] = mapped_column(BigId)
    lines_new: Mapped[int | None] = mapped_column(Integer)
    differences: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
