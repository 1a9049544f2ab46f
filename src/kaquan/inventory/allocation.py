"""Claiming stock for an order: the database, not Python, decides who gets which code.

Unique codes are claimed lowest expiry first (FEFO) with `FOR UPDATE SKIP LOCKED`
on PostgreSQL, so concurrent buyers take different rows without waiting for
each other; on SQLite the surrounding `BEGIN IMMEDIATE` serializes writers. The
claim query names `status = 'available'` as a literal so the planner can use
the partial index of available rows even for prepared, generic plans: a claim
never scans the sold history.

A segment sale takes the next contiguous sub-range of one available range
under a waiting row lock (there is usually one hot range per segment, so
skipping it would answer "out of stock" falsely).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog.models import Sku
from kaquan.inventory import lifecycle
from kaquan.inventory.errors import IllegalTransition, OutOfStock
from kaquan.inventory.models import Batch, Code, Segment, SegmentRange
from kaquan.kit import clock
from kaquan.kit.db import Database, share_locked

CLAIM_ATTEMPTS = 5
_CODE_AVAILABLE = Code.status == literal_column("'available'")
_RANGE_AVAILABLE = SegmentRange.status == literal_column("'available'")
_RANGE_SIZE = SegmentRange.last_serial - SegmentRange.first_serial + 1


@dataclass(frozen=True)
class Claim:
    """What one claim took: code ids, or (first, last) serial pairs of a segment."""

    code_ids: tuple[int, ...] = ()
    serial_ranges: tuple[tuple[int, int, int], ...] = ()  # (segment_id, first, last)

    @property
    def units(self) -> int:
        return len(self.code_ids) + sum(last - first + 1 for _, first, last in self.serial_ranges)


async def reserve(
    db: Database, session: AsyncSession, sku: Sku, quantity: int, *, order_id: int, hold_until: datetime
) -> Claim:
    """Hold `quantity` units of `sku` for an unpaid order until `hold_until`."""
    return await _claim(db, session, sku, quantity, order_id=order_id, target="reserved", hold_until=hold_until)


async def sell_now(db: Database, session: AsyncSession, sku: Sku, quantity: int, *, order_id: int) -> Claim:
    """Take `quantity` available units straight to sold (a paid order whose hold had lapsed)."""
    return await _claim(db, session, sku, quantity, order_id=order_id, target="sold", hold_until=None)


async def sell_reserved(session: AsyncSession, order_id: int, *, quantity: int) -> None:
    """Turn the order's reserved units into sold ones; they must be exactly `quantity`."""
    held = await held_units(session, order_id, "reserved")
    if held != quantity:
        raise IllegalTransition(f"order {order_id} holds {held} unit(s), expected {quantity}", held=held)
    await _move_held(session, order_id, source="reserved", target="sold", sold_at=clock.now(), hold_until=None)


async def release(session: AsyncSession, order_id: int) -> int:
    """Return an unpaid order's reserved units to stock; returns how many units came back.

    Units of a quarantined (leaked) batch do not come back: they are voided instead.
    """
    units = await held_units(session, order_id, "reserved")
    quarantined_codes, quarantined_ranges = await _held_in_quarantine(session, order_id)
    await _move_held(session, order_id, source="reserved", target="available", order_id=None, hold_until=None)
    for model, ids in ((Code, quarantined_codes), (SegmentRange, quarantined_ranges)):
        if ids:
            await lifecycle.transition(
                session, model, model.id.in_(ids), source="available", target="voided", expected=len(ids)
            )
    return units - await _units_of(session, quarantined_codes, quarantined_ranges)


async def _move_held(session: AsyncSession, holder: int, /, *, source: str, target: str, **values: Any) -> None:
    """Move everything the order `holder` holds in `source` state, codes and serial ranges alike."""
    for model in (Code, SegmentRange):
        await lifecycle.transition(session, model, model.order_id == holder, source=source, target=target, **values)


async def _held_in_quarantine(session: AsyncSession, order_id: int) -> tuple[list[int], list[int]]:
    """The order's reserved codes and ranges whose batch is quarantined.

    The batches are share-locked first: a quarantine (which locks its batch for
    update) and a release then run one after the other, so a released code can
    never slip back into stock past a quarantine running at the same moment.
    """
    code_batches = select(Code.batch_id).where(Code.order_id == order_id, Code.status == "reserved")
    range_batches = (
        select(Segment.batch_id)
        .join(SegmentRange, SegmentRange.segment_id == Segment.id)
        .where(SegmentRange.order_id == order_id, SegmentRange.status == "reserved")
    )
    batches = share_locked(
        session,
        select(Batch.id, Batch.quarantined_at).where(Batch.id.in_(code_batches.union(range_batches))),
    )
    quarantined = [row.id for row in await session.execute(batches) if row.quarantined_at is not None]
    if not quarantined:
        return [], []
    codes = await session.execute(
        select(Code.id).where(Code.order_id == order_id, Code.status == "reserved", Code.batch_id.in_(quarantined))
    )
    ranges = await session.execute(
        select(SegmentRange.id)
        .join(Segment, Segment.id == SegmentRange.segment_id)
        .where(SegmentRange.order_id == order_id, SegmentRange.status == "reserved", Segment.batch_id.in_(quarantined))
    )
    return list(codes.scalars()), list(ranges.scalars())


async def _units_of(session: AsyncSession, code_ids: list[int], range_ids: list[int]) -> int:
    if not range_ids:
        return len(code_ids)
    serials = await session.execute(select(func.sum(_RANGE_SIZE)).where(SegmentRange.id.in_(range_ids)))
    return len(code_ids) + int(serials.scalar_one() or 0)


async def held_units(session: AsyncSession, order_id: int, status: str) -> int:
    codes = await session.execute(
        select(func.count()).select_from(Code).where(Code.order_id == order_id, Code.status == status)
    )
    serials = await session.execute(
        select(func.coalesce(func.sum(_RANGE_SIZE), 0)).where(
            SegmentRange.order_id == order_id, SegmentRange.status == status
        )
    )
    return int(codes.scalar_one()) + int(serials.scalar_one())


async def available_units(session: AsyncSession, sku: Sku) -> int:
    if sku.stock_kind == "segment":
        stmt = select(func.coalesce(func.sum(_RANGE_SIZE), 0)).where(SegmentRange.sku_id == sku.id, _RANGE_AVAILABLE)
    else:
        stmt = select(func.count()).select_from(Code).where(Code.sku_id == sku.id, _CODE_AVAILABLE)
    return int((await session.execute(stmt)).scalar_one())


def claim_codes_statement(db: Database, sku_id: int, quantity: int) -> Select[int]:
    """The claim: available codes of a SKU, lowest expiry first, locked and skipping rows others hold."""
    stmt = (
        select(Code.id)
        .where(Code.sku_id == sku_id, _CODE_AVAILABLE)
        .order_by(Code.expires_on.asc().nulls_last(), Code.id)
        .limit(quantity)
    )
    return db.claim(stmt)


async def _claim(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    *,
    order_id: int,
    target: str,
    hold_until: datetime | None,
) -> Claim:
    lifecycle.check("available", target)
    for _ in range(CLAIM_ATTEMPTS):
        if sku.stock_kind == "segment":
            claim = await _claim_serials(db, session, sku, quantity, order_id, target, hold_until)
        else:
            claim = await _claim_codes(db, session, sku, quantity, order_id, target, hold_until)
        if claim is not None:
            return claim
        # Rows we skipped or lost to a concurrent claim may still free up: look at the truth once more.
        if await available_units(session, sku) < quantity:
            break
    raise OutOfStock(sku.id, wanted=quantity, available=await available_units(session, sku))


async def _claim_codes(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    order_id: int,
    target: str,
    hold_until: datetime | None,
) -> Claim | None:
    ids = tuple((await session.execute(claim_codes_statement(db, sku.id, quantity))).scalars())
    if len(ids) < quantity:
        return None
    sold_at = clock.now() if target == "sold" else None
    if db.protect:
        await lifecycle.transition(
            session,
            Code,
            Code.id.in_(ids),
            source="available",
            target=target,
            expected=quantity,
            order_id=order_id,
            hold_until=hold_until,
            sold_at=sold_at,
        )
    else:  # test-only: the naive claim every race test must first show to be broken
        await session.execute(
            update(Code).where(Code.id.in_(ids)).values(status=target, order_id=order_id, hold_until=hold_until)
        )
    return Claim(code_ids=ids)


async def _claim_serials(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    order_id: int,
    target: str,
    hold_until: datetime | None,
) -> Claim | None:
    base = (
        select(
            SegmentRange.id,
            SegmentRange.segment_id,
            SegmentRange.sku_id,
            SegmentRange.warehouse_id,
            SegmentRange.first_serial,
            SegmentRange.last_serial,
            SegmentRange.expires_on,
        )
        .where(SegmentRange.sku_id == sku.id, _RANGE_AVAILABLE)
        .order_by(SegmentRange.expires_on.asc().nulls_last(), SegmentRange.id)
    )
    # One contiguous range if any piece is large enough; else the fewest pieces in FEFO order.
    rows = list((await session.execute(db.lock(base.where(quantity <= _RANGE_SIZE).limit(1)))).all())
    if not rows:
        rows = list((await session.execute(db.lock(base))).all())
    taken: list[tuple[int, int, int]] = []
    remaining = quantity
    for row in rows:
        if remaining == 0:
            break
        size = row.last_serial - row.first_serial + 1
        take = min(size, remaining)
        first, last = row.first_serial, row.first_serial + take - 1
        moved = await _split_range(session, row, take, order_id, target, hold_until)
        if not moved:
            return None
        taken.append((row.segment_id, first, last))
        remaining -= take
    if remaining:
        return None
    return Claim(serial_ranges=tuple(taken))


async def _split_range(
    session: AsyncSession,
    row: Row[*tuple[Any, ...]],
    take: int,
    order_id: int,
    target: str,
    hold_until: datetime | None,
) -> bool:
    """Cut the first `take` serials off an available range into a new piece in `target` state."""
    first, last = row.first_serial, row.first_serial + take - 1
    sold_at = clock.now() if target == "sold" else None
    if last == row.last_serial:
        moved = await lifecycle.transition(
            session,
            SegmentRange,
            (SegmentRange.id == row.id) & (SegmentRange.first_serial == first),
            source="available",
            target=target,
            order_id=order_id,
            hold_until=hold_until,
            sold_at=sold_at,
        )
        return moved == 1
    result = await session.execute(
        update(SegmentRange)
        .where(SegmentRange.id == row.id, SegmentRange.first_serial == first, _RANGE_AVAILABLE)
        .values(first_serial=last + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(
        SegmentRange(
            segment_id=row.segment_id,
            sku_id=row.sku_id,
            warehouse_id=row.warehouse_id,
            first_serial=first,
            last_serial=last,
            status=target,
            expires_on=row.expires_on,
            order_id=order_id,
            hold_until=hold_until,
            sold_at=sold_at,
        )
    )
    await session.flush()
    return True
