"""Importing stock: a file of unique codes becomes one sealed batch; a serial range becomes one segment.

Imports are all-or-nothing by default: any bad line (malformed, breaking the
SKU's format rule, a duplicate within the file or of a code already in the
inventory) rejects the whole file with every problem listed by line number.
With `skip_invalid` the good lines are imported and the bad ones reported.
"""

import asyncio
import dataclasses
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import attrgetter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.models import Sku
from kaquan.catalog.rules import CodeRule
from kaquan.inventory.errors import ImportRejected, SegmentOverlap, WarehouseNotFound, WrongStockKind
from kaquan.inventory.models import Batch, Code, Segment, SegmentRange, Warehouse
from kaquan.inventory.parsing import CodeLine, LineProblem, ParsedFile, ProblemCode, parse_code_file
from kaquan.inventory.vault import Vault
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, SecretBox, new_key
from kaquan.kit.db import Database, DuplicateRow, serialize_on
from kaquan.kit.errors import BadInput

COPY_CHUNK = 50_000
MAX_REPORTED_PROBLEMS = 200
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

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BatchMeta:
    supplier: str = ""
    unit_cost_minor: int = 0
    expires_on: date | None = None
    warehouse: str = "main"
    source: str = ""

    def __post_init__(self) -> None:
        if self.unit_cost_minor < 0:
            raise BadInput("unit cost cannot be negative", unit_cost_minor=self.unit_cost_minor)


@dataclass(frozen=True)
class ImportResult:
    batch_id: int | None
    imported: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    encoding: str = ""
    layout: str = ""


def _problem(p: LineProblem) -> dict[str, Any]:
    return {"line_no": p.line_no, "code": p.code, "reason": p.reason}


def apply_rule(rule: CodeRule, parsed: ParsedFile) -> ParsedFile:
    """Move the lines that break `rule` into problems ("format_rule"), kept in line order."""
    if rule == CodeRule():
        return parsed
    check = rule.checker()
    kept = []
    broken = []
    for line in parsed.lines:
        reason = check(line.card_no, line.secret)
        if reason is None:
            kept.append(line)
        else:
            broken.append(LineProblem(line.line_no, ProblemCode.FORMAT_RULE, reason))
    if not broken:
        return parsed
    problems = list(heapq.merge(parsed.problems, broken, key=attrgetter("line_no")))
    return dataclasses.replace(parsed, lines=kept, problems=problems)


async def warehouse_id(session: AsyncSession, code: str) -> int:
    found = (await session.execute(select(Warehouse.id).where(Warehouse.code == code))).scalar_one_or_none()
    if found is None:
        raise WarehouseNotFound(f"no warehouse {code!r}", warehouse=code)
    return found


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
    """Seal and store every good line of `parsed` as one batch of `sku`."""
    if sku.stock_kind != "codes":
        raise WrongStockKind(f"SKU {sku.code} is stocked by segment, not by code file", sku=sku.code)
    parsed = apply_rule(CodeRule.model_validate(sku.code_rule), parsed)
    problems = list(parsed.problems)
    lines = list(parsed.lines)
    fingerprint = vault.fingerprints.of
    # The usual clean import fingerprints its codes chunk by chunk, overlapped with the database's work.
    fingerprints: list[bytes] | None = None
    if problems or skip_invalid:
        fingerprints = [fingerprint(line.card_no, line.secret) for line in lines]
        known = await _existing(db, session, fingerprints)
        keep = [i for i, fp in enumerate(fingerprints) if fp not in known]
        problems += [_duplicate(lines[i]) for i, fp in enumerate(fingerprints) if fp in known]
        lines = [lines[i] for i in keep]
        fingerprints = [fingerprints[i] for i in keep]
    problems.sort(key=lambda p: p.line_no)
    if problems and not skip_invalid:
        raise ImportRejected([_problem(p) for p in problems[:MAX_REPORTED_PROBLEMS]], total=len(problems))
    if not lines:
        raise ImportRejected(
            [_problem(p) for p in problems[:MAX_REPORTED_PROBLEMS]]
            or [{"line_no": 0, "code": "no_codes", "reason": "the file holds no codes"}],
            total=max(len(problems), 1),
        )
    batch = await _new_batch(session, sku, meta, kind="codes", quantity=len(lines), actor=actor, keyring=vault.keyring)
    box = vault.box(batch.wrapped_key or b"")
    try:
        async with session.begin_nested():
            await _copy_codes(db, session, box, batch, sku, lines, fingerprints or fingerprint, progress)
    except DuplicateRow:
        # A concurrent import took some of these codes between our check and our copy.
        fingerprints = fingerprints or [fingerprint(line.card_no, line.secret) for line in lines]
        known = await _existing(db, session, fingerprints)
        duplicates = [_problem(_duplicate(line)) for line, fp in zip(lines, fingerprints, strict=True) if fp in known]
        raise ImportRejected(
            duplicates[:MAX_REPORTED_PROBLEMS] or _unknown_duplicate(), total=len(duplicates)
        ) from None
    await audit.record(
        session,
        actor,
        "batch.imported",
        target=f"batch:{batch.id}",
        after={"sku": sku.code, "codes": len(lines), "skipped": len(problems), "supplier": meta.supplier},
    )
    return ImportResult(
        batch.id,
        len(lines),
        [_problem(p) for p in problems[:MAX_REPORTED_PROBLEMS]],
        parsed.encoding,
        parsed.layout,
    )


def _duplicate(line: CodeLine) -> LineProblem:
    return LineProblem(line.line_no, "duplicate_code", "this code is already in the inventory")


def _unknown_duplicate() -> list[dict[str, Any]]:
    return [{"line_no": 0, "code": "duplicate_code", "reason": "a code was imported concurrently; retry"}]


async def _existing(db: Database, session: AsyncSession, fingerprints: Sequence[bytes]) -> set[bytes]:
    known: set[bytes] = set()
    size = db.chunk_size()
    for start in range(0, len(fingerprints), size):
        chunk = fingerprints[start : start + size]
        rows = await session.execute(select(Code.fingerprint).where(Code.fingerprint.in_(chunk)))
        known.update(rows.scalars())
    return known


async def _new_batch(
    session: AsyncSession,
    sku: Sku,
    meta: BatchMeta,
    *,
    kind: str,
    quantity: int,
    actor: str,
    keyring: KeyRing | None,
) -> Batch:
    batch = Batch(
        sku_id=sku.id,
        warehouse_id=await warehouse_id(session, meta.warehouse),
        kind=kind,
        supplier=meta.supplier,
        unit_cost_minor=meta.unit_cost_minor,
        currency=sku.currency,
        expires_on=meta.expires_on,
        wrapped_key=keyring.wrap(new_key()) if keyring else None,
        quantity=quantity,
        source=meta.source,
        created_by=actor,
        created_at=clock.now(),
    )
    session.add(batch)
    await session.flush()
    return batch


async def _copy_codes(
    db: Database,
    session: AsyncSession,
    box: SecretBox,
    batch: Batch,
    sku: Sku,
    lines: Sequence[CodeLine],
    fingerprints: Sequence[bytes] | Callable[[str | None, str], bytes],
    progress: Progress | None,
) -> None:
    """Seal and copy in chunks; on PostgreSQL the next chunk is sealed while the server stores this one.

    `fingerprints` are the lines' fingerprints, or the function computing them chunk by chunk.
    """
    constants = (batch.id, sku.id, batch.warehouse_id, "available")
    encrypt_card_no = sku.encrypt_card_no
    default_expiry = batch.expires_on
    dates_as_text = not db.is_postgresql

    def sealed_rows(start: int) -> list[tuple[Any, ...]]:
        chunk = lines[start : start + COPY_CHUNK]
        seal = box.bulk_sealer(2 * len(chunk))
        if callable(fingerprints):
            chunk_fingerprints = [fingerprints(line.card_no, line.secret) for line in chunk]
        else:
            chunk_fingerprints = list(fingerprints[start : start + COPY_CHUNK])
        rows = []
        for line, fp in zip(chunk, chunk_fingerprints, strict=True):
            card_no = line.card_no
            expires = line.expires_on or default_expiry
            rows.append(
                (
                    *constants,
                    fp,
                    None if encrypt_card_no else card_no,
                    seal(card_no, fp) if encrypt_card_no and card_no else None,
                    seal(line.secret, fp),
                    expires.isoformat() if dates_as_text and expires else expires,
                )
            )
        return rows

    starts = range(0, len(lines), COPY_CHUNK)
    if not db.copy_runs_beside_python:
        # SQLite stores rows on a thread that needs the GIL between rows; sealing beside it would starve it.
        for start in starts:
            rows = await asyncio.to_thread(sealed_rows, start)
            await db.copy_rows(session, Code.__table__, _CODE_COLUMNS, rows)  # type: ignore[arg-type]
            if progress:
                progress(len(rows))
        return
    upcoming = asyncio.ensure_future(asyncio.to_thread(sealed_rows, starts[0]))
    try:
        for position in range(len(starts)):
            rows = await upcoming
            if position + 1 < len(starts):
                upcoming = asyncio.ensure_future(asyncio.to_thread(sealed_rows, starts[position + 1]))
            await db.copy_rows(session, Code.__table__, _CODE_COLUMNS, rows)  # type: ignore[arg-type]
            if progress:
                progress(len(rows))
    finally:
        if not upcoming.done():
            await asyncio.wait([upcoming])


async def add_segment(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    *,
    prefix: str,
    width: int,
    start: int,
    end: int,
    meta: BatchMeta,
    actor: str,
) -> Batch:
    """Add the serial range prefix+[start..end] (zero-padded to `width`) as one segment batch."""
    if sku.stock_kind != "segment":
        raise WrongStockKind(f"SKU {sku.code} is stocked by code file, not by segment", sku=sku.code)
    if not (1 <= width <= 18) or start < 0 or end < start or end >= 10**width:
        raise BadInput(
            "a segment needs 1 ≤ width ≤ 18 and 0 ≤ start ≤ end < 10^width",
            width=width,
            start=start,
            end=end,
        )
    if len(prefix) > 32 or not prefix.isascii() or not all(ch.isalnum() or ch in "-_" for ch in prefix):
        raise BadInput("a segment prefix is up to 32 ASCII letters, digits, '-' or '_'", prefix=prefix)
    # Every form that can spell one of these serials has the same total length (see _overlapping_segment).
    await serialize_on(session, f"segment:{len(prefix) + width}")
    overlap = await _overlapping_segment(session, prefix, width, start, end)
    if overlap is not None:
        raise SegmentOverlap(
            f"serials {prefix}{start:0{width}d}–{prefix}{end:0{width}d} overlap segment {overlap.id}",
            segment_id=overlap.id,
            start=overlap.start_serial,
            end=overlap.end_serial,
        )
    batch = await _new_batch(session, sku, meta, kind="segment", quantity=end - start + 1, actor=actor, keyring=None)
    segment = Segment(batch_id=batch.id, sku_id=sku.id, prefix=prefix, width=width, start_serial=start, end_serial=end)
    session.add(segment)
    await session.flush()
    session.add(
        SegmentRange(
            segment_id=segment.id,
            sku_id=sku.id,
            warehouse_id=batch.warehouse_id,
            first_serial=start,
            last_serial=end,
            status="available",
            expires_on=meta.expires_on,
        )
    )
    await audit.record(
        session,
        actor,
        "segment.added",
        target=f"batch:{batch.id}",
        after={"sku": sku.code, "prefix": prefix, "width": width, "start": start, "end": end},
    )
    return batch


async def _overlapping_segment(session: AsyncSession, prefix: str, width: int, start: int, end: int) -> Any:
    """A stored segment spelling any serial of prefix+[start..end], or None.

    Serials are strings: GC + 00000150 (width 8) and GC0 + 0000150 (width 7) are
    the same card GC00000150. Two forms spell common serials only when their
    total lengths are equal and the longer prefix is the shorter one plus digits;
    those digits lead every serial of the shorter form that the longer one spells.
    """
    columns = (Segment.id, Segment.prefix, Segment.width, Segment.start_serial, Segment.end_serial)
    spelled = len(prefix) + width
    # Forms whose prefix is ours or a shorter head of it: offset our range into theirs.
    for cut in range(len(prefix), -1, -1):
        digits = prefix[cut:]
        if digits and not (digits.isascii() and digits.isdigit()):
            break
        offset = int(digits or "0") * 10**width
        found = (
            await session.execute(
                select(*columns).where(
                    Segment.prefix == prefix[:cut],
                    Segment.width == spelled - cut,
                    Segment.start_serial <= offset + end,
                    Segment.end_serial >= offset + start,
                )
            )
        ).first()
        if found is not None:
            return found
    # Forms with a longer prefix that starts with ours: offset their range into ours.
    longer = await session.execute(
        select(*columns).where(
            Segment.prefix.startswith(prefix, autoescape=True),
            func.length(Segment.prefix) > len(prefix),
            func.length(Segment.prefix) + Segment.width == spelled,
        )
    )
    for row in longer:
        digits = row.prefix[len(prefix) :]
        if digits.isascii() and digits.isdigit():
            offset = int(digits) * 10**row.width
            if offset + row.start_serial <= end and offset + row.end_serial >= start:
                return row
    return None


async def import_file(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    sku: Sku,
    data: bytes,
    meta: BatchMeta,
    *,
    actor: str,
    layout: str = "auto",
    encoding: str | None = None,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Parse a code file (off the event loop: it can be millions of lines) and import it."""
    parsed = await asyncio.to_thread(parse_code_file, data, layout=layout, encoding=encoding)
    return await import_codes(
        db, session, vault, sku, parsed, meta, actor=actor, skip_invalid=skip_invalid, progress=progress
    )
