"""Serial-range stock (号段): a contiguous range added as one segment batch, never overlapping another."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.service import Sku
from kaquan.inventory.errors import SegmentOverlap, WrongStockKind
from kaquan.inventory.intake.batches import BatchMeta, new_batch
from kaquan.inventory.models import Batch, Segment, SegmentRange
from kaquan.kit.db import Database, serialize_on
from kaquan.kit.errors import BadInput


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
    batch = await new_batch(session, sku, meta, kind="segment", quantity=end - start + 1, actor=actor, keyring=None)
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
