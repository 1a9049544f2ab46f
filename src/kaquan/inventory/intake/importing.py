"""Importing stock: a file of unique codes becomes one sealed batch; a serial range becomes one segment.

Imports are all-or-nothing by default: any bad line (malformed, breaking the
SKU's format rule, a duplicate within the file or of a code already in the
inventory) rejects the whole file, with the first `MAX_REPORTED_PROBLEMS` problems
by line number and the count of all. With `skip_invalid` the good lines are
imported and the bad ones reported the same way.

Memory stays bounded whatever the file (see `inventory.parsing`): the file is
read, checked, sealed and stored a chunk at a time, and duplicates are found by
the database, never in a Python set that grows with the file.

- All-or-nothing (the usual clean file): one pass. Each chunk of lines is sealed
  and copied straight into the codes table, whose unique fingerprint index
  refuses a code seen before, in this file or any other. At the first bad line
  or refused copy the pass stops, its rows are rolled back, and a second,
  checking pass finds every problem.
- The checking pass copies each good line's (line number, fingerprint) into a
  temporary table and lets the database list the repeats within the file and
  the codes already in stock. It needs no sealing, so it is quick.
- `skip_invalid`: the checking pass first, then a storing pass that leaves out
  the lines it found bad, a chunk's worth of line numbers at a time.
"""

import asyncio
import secrets
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import BigInteger, Column, LargeBinary, Select, Table, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.service import Sku
from kaquan.inventory.errors import ImportRejected, WrongStockKind
from kaquan.inventory.intake.batches import BatchMeta as BatchMeta
from kaquan.inventory.intake.batches import new_batch
from kaquan.inventory.intake.parsing import MAX_REPORTED_PROBLEMS as MAX_REPORTED_PROBLEMS
from kaquan.inventory.intake.parsing import (
    CodeLine,
    CodeSource,
    LineProblem,
    ParsedFile,
    ProblemCode,
    ProblemLog,
    keep_valid,
    read_code_file,
)
from kaquan.inventory.models import Batch, Code
from kaquan.inventory.vault import Vault
from kaquan.kit.db import Database, DuplicateRow
from kaquan.kit.set_work import drop_scratch_table, scratch_table

COPY_CHUNK = 50_000
_CODE_COLUMNS = (
    "batch_id",
    "sku_id",
    "warehouse_id",
    "status",
    "fingerprint",
    "card_no",
    "card_no_sealed",
    "secret_sealed",
    "expires_on",
)


@dataclass(frozen=True)
class Advance:
    """How far an import has got: sent after every chunk of each pass."""

    phase: Literal["checking", "storing"]
    codes: int
    """Good codes checked, or codes stored, so far in this phase."""
    bytes_read: int
    """Bytes of the file read so far in this phase (0 for codes not read from a file)."""


Progress = Callable[[Advance], None]


class CodePass(Protocol):
    """One pass over the codes to import: blocks of lines in line order; bad lines go to the pass's problem log."""

    @property
    def encoding(self) -> str: ...

    @property
    def layout(self) -> str: ...

    @property
    def bytes_read(self) -> int: ...

    def __iter__(self) -> Iterator[list[CodeLine]]: ...


OpenPass = Callable[[ProblemLog], CodePass]
"""Starts a new pass from the first line, logging its problems to the given log."""


@dataclass(frozen=True)
class ImportResult:
    batch_id: int | None
    imported: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """The first `MAX_REPORTED_PROBLEMS` lines left out, in line order."""
    encoding: str = ""
    layout: str = ""
    skipped_total: int = 0


def _problem(p: LineProblem) -> dict[str, Any]:
    return {"line_no": p.line_no, "code": p.code, "reason": p.reason}


def _note_duplicate(log: ProblemLog, line_no: int, first_line: int | None) -> None:
    if first_line is None:
        log.note(line_no, "duplicate_code", "this code is already in the inventory")
    else:
        log.note(line_no, ProblemCode.DUPLICATE_IN_FILE, f"the same code already appears on line {first_line}")


def _log_duplicates(
    log: ProblemLog,
    first_line: dict[bytes, int],
    repeats: list[tuple[int, bytes]],
    earlier: dict[bytes, int],
    in_stock: dict[bytes, int],
) -> list[int]:
    """Log a chunk's duplicates (repeats of an earlier line, codes in stock) and return their line numbers."""
    duplicates = []
    for fp, line_no in first_line.items():
        if fp in earlier:
            _note_duplicate(log, line_no, earlier[fp])
            duplicates.append(line_no)
        elif fp in in_stock:
            _note_duplicate(log, line_no, None)
            duplicates.append(line_no)
    for line_no, fp in repeats:
        _note_duplicate(log, line_no, earlier.get(fp, first_line[fp]))
        duplicates.append(line_no)
    return duplicates


def _unknown_duplicate() -> list[dict[str, Any]]:
    return [{"line_no": 0, "code": "duplicate_code", "reason": "a code was imported concurrently; retry"}]


def _close(blocks: Iterator[list[CodeLine]]) -> None:
    """Close a pass left part-read, so its file is closed now rather than whenever it is collected."""
    close = getattr(blocks, "close", None)
    if close is not None:
        close()


async def import_file(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    sku: Sku,
    data: bytes | CodeSource,
    meta: BatchMeta,
    *,
    actor: str,
    layout: str = "auto",
    encoding: str | None = None,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a code file as one batch of `sku`, reading it a chunk at a time (off the event loop)."""
    source = CodeSource.of_bytes(data) if isinstance(data, bytes) else data

    def open_pass(log: ProblemLog) -> CodePass:
        return read_code_file(source, layout=layout, encoding=encoding, problems=log)

    # Checked before the first read, so a bad layout or encoding name is refused even for an empty file.
    open_pass(ProblemLog())
    return await _import(db, session, vault, sku, open_pass, meta, actor, skip_invalid, progress)


async def import_codes(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    sku: Sku,
    parsed: ParsedFile,
    meta: BatchMeta,
    *,
    actor: str,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import codes already in memory (generated vouchers, the demo) the same way as a file."""

    def open_pass(log: ProblemLog) -> CodePass:
        for problem in parsed.problems:
            log.add(problem)
        return _ParsedPass(parsed)

    return await _import(db, session, vault, sku, open_pass, meta, actor, skip_invalid, progress)


@dataclass
class _ParsedPass:
    parsed: ParsedFile
    bytes_read: int = 0

    @property
    def encoding(self) -> str:
        return self.parsed.encoding

    @property
    def layout(self) -> str:
        return self.parsed.layout

    def __iter__(self) -> Iterator[list[CodeLine]]:
        lines = self.parsed.lines
        for start in range(0, len(lines), COPY_CHUNK):
            yield lines[start : start + COPY_CHUNK]


class _BadLine(Exception):
    """The all-or-nothing pass met a bad line: stop storing, roll back, and check the whole file."""


async def _import(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    sku: Sku,
    open_pass: OpenPass,
    meta: BatchMeta,
    actor: str,
    skip_invalid: bool,
    progress: Progress | None,
) -> ImportResult:
    if sku.stock_kind != "codes":
        raise WrongStockKind(f"SKU {sku.code} is stocked by segment, not by code file", sku=sku.code)
    rule = CodeRule.model_validate(sku.code_rule)
    importer = _Importer(db, session, vault, open_pass, None if rule == CodeRule() else rule.checker(), progress)
    log = ProblemLog()
    skips: Table | None = None
    if skip_invalid:
        checked = await importer.check_all(keep_skips=True)
        log, skips = checked.log, checked.skips
        if skips is not None and (checked.good == 0 or log.total == 0):
            # Nothing to store, or nothing to leave out: the storing pass needs no list of lines.
            await drop_scratch_table(session, skips)
            skips = None
        if checked.good == 0:
            raise checked.rejection()
    batch = await new_batch(session, sku, meta, kind="codes", quantity=0, actor=actor, keyring=vault.keyring)
    try:
        async with session.begin_nested():
            stored, codes = await importer.store(batch, sku, skips=skips)
    except (_BadLine, DuplicateRow):
        # A bad line, a repeat, a code in stock, or one a concurrent import took since we checked.
        raise (await importer.check_all(keep_skips=False)).rejection() from None
    if skips is not None:
        await drop_scratch_table(session, skips)
    batch.quantity = stored
    await session.flush()
    await audit.record(
        session,
        actor,
        "batch.imported",
        target=f"batch:{batch.id}",
        after={"sku": sku.code, "codes": stored, "skipped": log.total, "supplier": meta.supplier},
    )
    return ImportResult(
        batch.id, stored, [_problem(p) for p in log.first], codes.encoding, codes.layout, skipped_total=log.total
    )


@dataclass(frozen=True)
class _Checked:
    log: ProblemLog
    good: int
    skips: Table | None
    """When asked to keep them: the line numbers of the repeats and of the codes already in stock."""

    def rejection(self) -> ImportRejected:
        if self.log.total:
            return ImportRejected([_problem(p) for p in self.log.first], total=self.log.total)
        if self.good:  # the check found nothing: the code that clashed was rolled back since
            return ImportRejected(_unknown_duplicate(), total=1)
        return ImportRejected([{"line_no": 0, "code": "no_codes", "reason": "the file holds no codes"}], total=1)


@dataclass
class _Importer:
    db: Database
    session: AsyncSession
    vault: Vault
    open_pass: OpenPass
    check: Callable[[str | None, str], str | None] | None
    progress: Progress | None

    async def check_all(self, *, keep_skips: bool) -> _Checked:
        """The checking pass: every problem of the file, its duplicates found by the database.

        A chunk at a time: the chunk's fingerprints are looked up among those of the
        earlier chunks (a scratch table with a unique index) and among the codes in
        stock, then added to the scratch table. With `keep_skips` the line numbers
        of the duplicates stay in a second table for the storing pass (drop it after).
        """
        log = ProblemLog()
        codes = self.open_pass(log)
        blocks = iter(codes)
        fingerprint = self.vault.fingerprints.of
        tag = secrets.token_hex(4)
        seen = await scratch_table(
            self.session,
            f"kaquan_import_seen_{tag}",
            Column("fingerprint", LargeBinary, primary_key=True),
            Column("line_no", BigInteger, nullable=False),
        )
        skips = None
        if keep_skips:
            skips = await scratch_table(
                self.session, f"kaquan_import_skips_{tag}", Column("line_no", BigInteger, primary_key=True)
            )

        def next_prints() -> tuple[dict[bytes, int], list[tuple[int, bytes]], int] | None:
            """The chunk's first line of each fingerprint, its repeats within the chunk, and its size."""
            chunk = self._next_chunk(blocks, log)
            if chunk is None:
                return None
            first_line: dict[bytes, int] = {}
            repeats: list[tuple[int, bytes]] = []
            for line in chunk:
                fp = fingerprint(line.card_no, line.secret)
                if first_line.setdefault(fp, line.line_no) != line.line_no:
                    repeats.append((line.line_no, fp))
            return first_line, repeats, len(chunk)

        good = 0
        try:
            while (prints := await asyncio.to_thread(next_prints)) is not None:
                first_line, repeats, size = prints
                earlier = await self._lookup(select(seen.c.fingerprint, seen.c.line_no), seen.c.fingerprint, first_line)
                new = [fp for fp in first_line if fp not in earlier]
                in_stock = await self._lookup(select(Code.fingerprint, literal(0)), Code.fingerprint, new)
                duplicates = await asyncio.to_thread(_log_duplicates, log, first_line, repeats, earlier, in_stock)
                if new:
                    rows = [(fp, first_line[fp]) for fp in new]
                    await self.db.copy_rows(self.session, seen, ("fingerprint", "line_no"), rows)
                if duplicates and skips is not None:
                    await self.db.copy_rows(self.session, skips, ("line_no",), [(n,) for n in duplicates])
                good += size - len(duplicates)
                self._advance("checking", good, codes)
        finally:
            _close(blocks)
        await drop_scratch_table(self.session, seen)
        return _Checked(log, good, skips)

    async def _lookup(self, query: Select[bytes, int], key: Any, fingerprints: Collection[bytes]) -> dict[bytes, int]:
        """The rows of `query` whose `key` is one of `fingerprints`, as a dict, a bounded IN list at a time."""
        fingerprints = list(fingerprints)
        found: dict[bytes, int] = {}
        size = self.db.chunk_size()
        for start in range(0, len(fingerprints), size):
            rows = await self.session.execute(query.where(key.in_(fingerprints[start : start + size])))
            found.update((fingerprint, line_no) for fingerprint, line_no in rows)
        return found

    async def store(self, batch: Batch, sku: Sku, *, skips: Table | None) -> tuple[int, CodePass]:
        """The storing pass: seal and copy the good lines a chunk at a time; returns how many were stored.

        Without `skips` (all-or-nothing) the first bad line raises `_BadLine`; with it,
        the lines it names and the lines with problems are left out.
        """
        log = ProblemLog(limit=0)
        codes = self.open_pass(log)
        blocks = iter(codes)
        seal = _Sealer(self.vault, batch, sku, dates_as_text=self.db.copies_dates_as_text)

        def read() -> list[CodeLine] | None:
            chunk = self._next_chunk(blocks, log)
            if skips is None and log.total:
                raise _BadLine
            return chunk

        def read_and_seal() -> list[tuple[Any, ...]] | None:
            chunk = read()
            return None if chunk is None else seal(chunk)

        async def next_rows() -> list[tuple[Any, ...]] | None:
            if skips is None:
                return await asyncio.to_thread(read_and_seal)
            chunk = await asyncio.to_thread(read)
            if chunk is None:
                return None
            if not chunk:
                return []
            left_out = await self._skipped_between(skips, chunk[0].line_no, chunk[-1].line_no)
            return await asyncio.to_thread(seal, [line for line in chunk if line.line_no not in left_out])

        # PostgreSQL stores a chunk while the next is read and sealed. SQLite stores rows on a thread
        # that needs the GIL between rows: sealing beside it would starve it. Skipping asks the database
        # which lines to leave out between reads, on the connection that copies.
        overlap = skips is None and self.db.copy_runs_beside_python
        stored = 0
        upcoming = asyncio.ensure_future(next_rows())
        try:
            while (rows := await upcoming) is not None:
                if overlap:
                    upcoming = asyncio.ensure_future(next_rows())
                if rows:
                    await self.db.copy_rows(self.session, Code.__table__, _CODE_COLUMNS, rows)  # type: ignore[arg-type]
                stored += len(rows)
                self._advance("storing", stored, codes)
                if not overlap:
                    upcoming = asyncio.ensure_future(next_rows())
        finally:
            if not upcoming.done():
                await asyncio.wait([upcoming])
            if not upcoming.cancelled():
                upcoming.exception()  # retrieved: a second failure must not be logged as unhandled
            _close(blocks)
        return stored, codes

    def _next_chunk(self, blocks: Iterator[list[CodeLine]], log: ProblemLog) -> list[CodeLine] | None:
        """About `COPY_CHUNK` lines that pass the SKU's rule (fewer at the end), or None when there are no more."""
        chunk: list[CodeLine] | None = None
        for block in blocks:
            if chunk is None:
                chunk = block
            else:
                chunk.extend(block)
            if len(chunk) >= COPY_CHUNK:
                break
        if chunk is None or self.check is None:
            return chunk
        return keep_valid(self.check, chunk, log)

    async def _skipped_between(self, skips: Table, first: int, last: int) -> set[int]:
        found = await self.session.execute(select(skips.c.line_no).where(skips.c.line_no.between(first, last)))
        return set(found.scalars())

    def _advance(self, phase: Literal["checking", "storing"], count: int, codes: CodePass) -> None:
        if self.progress is not None:
            self.progress(Advance(phase, count, codes.bytes_read))


class _Sealer:
    """Turns a chunk of code lines into rows of the codes table, each secret sealed and bound to its fingerprint."""

    def __init__(self, vault: Vault, batch: Batch, sku: Sku, *, dates_as_text: bool) -> None:
        self.box = vault.box(batch.wrapped_key or b"")
        self.fingerprint = vault.fingerprints.of
        self.constants = (batch.id, sku.id, batch.warehouse_id, "available")
        self.encrypt_card_no = sku.encrypt_card_no
        self.default_expiry = batch.expires_on
        self.dates_as_text = dates_as_text

    def __call__(self, lines: list[CodeLine]) -> list[tuple[Any, ...]]:
        seal = self.box.bulk_sealer(2 * len(lines))
        fingerprint, constants, encrypt_card_no = self.fingerprint, self.constants, self.encrypt_card_no
        rows = []
        for line in lines:
            card_no = line.card_no
            fp = fingerprint(card_no, line.secret)
            expires = line.expires_on or self.default_expiry
            rows.append(
                (
                    *constants,
                    fp,
                    None if encrypt_card_no else card_no,
                    seal(card_no, fp) if encrypt_card_no and card_no else None,
                    seal(line.secret, fp),
                    expires.isoformat() if self.dates_as_text and expires else expires,
                )
            )
        return rows
