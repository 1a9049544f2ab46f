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

Every claim follows a warehouse order: the first warehouse's units first, FEFO
within it, then the next warehouse's. Each warehouse is read on its own through
the claim index, which leads with (sku_id, warehouse_id): a claim reads rows
already in FEFO order and never sorts the available codes of a SKU. No order
(`warehouses=None`) means every warehouse, by id.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog.service import Sku
from kaquan.inventory import lifecycle
from kaquan.inventory.errors import IllegalTransition, OutOfStock
from kaquan.inventory.models import Batch, Code, Segment, SegmentRange, Warehouse
from kaquan.kit import clock
from kaquan.kit.db import Database, share_locked
from kaquan.kit.shortcache import ShortCache

CLAIM_ATTEMPTS = 5
WAREHOUSES: ShortCache[tuple[int, ...]] = ShortCache()  # every warehouse by id; cleared when one is created
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
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    *,
    order_id: int,
    hold_until: datetime,
    warehouses: Sequence[int] | None = None,
) -> Claim:
    """Hold `quantity` units of `sku` for an unpaid order until `hold_until`, following the warehouse order."""
    return await _claim(
        db,
        session,
        sku,
        quantity,
        order_id=order_id,
        target="reserved",
        hold_until=hold_until,
        warehouses=warehouses,
    )


async def sell_now(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    *,
    order_id: int,
    warehouses: Sequence[int] | None = None,
) -> Claim:
    """Take `quantity` available units straight to sold (a paid order whose hold had lapsed)."""
    return await _claim(
        db, session, sku, quantity, order_id=order_id, target="sold", hold_until=None, warehouses=warehouses
    )


async def claim_codes(
    db: Database, session: AsyncSession, sku_id: int, quantity: int, *, warehouses: Sequence[int] | None = None
) -> list[int]:
    """Lock up to `quantity` available codes of a SKU, skipping rows others hold, and return their ids.

    The first warehouse of the order is emptied first (FEFO within it), then the next.
    The rows are not changed: the caller moves them, in this same transaction.
    """
    claimed: list[int] = []
    for warehouse_id in await warehouse_order(session, warehouses):
        if len(claimed) >= quantity:
            break
        stmt = claim_codes_statement(db, sku_id, warehouse_id, quantity - len(claimed))
        claimed.extend((await session.execute(stmt)).scalars())
    return claimed


async def warehouse_order(session: AsyncSession, warehouses: Sequence[int] | None) -> list[int]:
    """The warehouses a claim visits, in order: as given (first mention wins), or every warehouse by id."""
    if warehouses is not None:
        return list(dict.fromkeys(warehouses))
    every = WAREHOUSES.get(session, "all")
    if every is None:
        every = tuple((await session.execute(select(Warehouse.id).order_by(Warehouse.id))).scalars())
        WAREHOUSES.put(session, "all", every)
    return list(every)


async def sell_reserved(session: AsyncSession, order_id: int, *, quantity: int, stock_kind: str | None = None) -> None:
    """Turn the order's reserved units into sold ones; they must be exactly `quantity`.

    Knowing the SKU's `stock_kind` ("codes"), one UPDATE does it: it must move exactly `quantity` codes, or it
    raises and the caller's transaction rolls back.
    """
    if stock_kind == "codes":
        await lifecycle.transition(
            session,
            Code,
            Code.order_id == order_id,
            source="reserved",
            target="sold",
            expected=quantity,
            sold_at=clock.now(),
            hold_until=None,
        )
        return
    held = await held_units(session, order_id, "reserved")
    if held != quantity:
        raise IllegalTransition(f"order {order_id} holds {held} unit(s), expected {quantity}", held=held)
    await _move_held(session, order_id, source="reserved", target="sold", sold_at=clock.now(), hold_until=None)


async def sell_held(session: AsyncSession, order_id: int, *, quantity: int, stock_kind: str) -> bool:
    """Sell the units a paid order holds, if it still holds them: True when its `quantity` reserved units are
    sold now, False when it holds none (its hold lapsed and they went back to stock); holding some but not
    all raises `IllegalTransition` (the caller's transaction rolls back).

    A code SKU's order is checked and sold by one UPDATE (the rows it moved are the units it held).
    """
    if stock_kind != "codes":
        held = await held_units(session, order_id, "reserved")
        if held == 0:
            return False
        await sell_reserved(session, order_id, quantity=quantity)
        return True
    moved = await lifecycle.transition(
        session, Code, Code.order_id == order_id, source="reserved", target="sold", sold_at=clock.now(), hold_until=None
    )
    if moved not in (0, quantity):
        raise IllegalTransition(f"order {order_id} held {moved} unit(s), expected {quantity}", held=moved)
    return moved == quantity


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
    """Units the order holds in `status`, codes and serials alike, in one statement."""
    codes = select(func.count()).select_from(Code).where(Code.order_id == order_id, Code.status == status)
    serials = select(func.coalesce(func.sum(_RANGE_SIZE), 0)).where(
        SegmentRange.order_id == order_id, SegmentRange.status == status
    )
    return int((await session.execute(select(codes.scalar_subquery() + serials.scalar_subquery()))).scalar_one())


async def available_units(
    session: AsyncSession, sku: Sku, *, warehouses: Sequence[int] | None = None, at_most: int | None = None
) -> int:
    """Available units of `sku` in `warehouses` (None: all of them).

    With `at_most`, counting stops there: enough to compare with a threshold without
    counting a million-code warehouse.
    """
    if sku.stock_kind == "segment":
        where: ColumnElement[bool] = (SegmentRange.sku_id == sku.id) & _RANGE_AVAILABLE
        if warehouses is not None:
            where = where & SegmentRange.warehouse_id.in_(list(warehouses))
        stmt = select(func.coalesce(func.sum(_RANGE_SIZE), 0)).where(where)
        serials = int((await session.execute(stmt)).scalar_one())
        return serials if at_most is None else min(serials, at_most)
    rows = select(Code.id).where(Code.sku_id == sku.id, _CODE_AVAILABLE)
    if warehouses is not None:
        rows = rows.where(Code.warehouse_id.in_(list(warehouses)))
    if at_most is not None:
        rows = rows.limit(at_most)
    counted = select(func.count()).select_from(rows.subquery())
    return int((await session.execute(counted)).scalar_one())


def claim_codes_statement(db: Database, sku_id: int, warehouse_id: int, quantity: int) -> Select[int]:
    """The claim in one warehouse: available codes, lowest expiry first, locked and skipping rows others hold."""
    stmt = (
        select(Code.id)
        .where(Code.sku_id == sku_id, Code.warehouse_id == warehouse_id, _CODE_AVAILABLE)
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
    warehouses: Sequence[int] | None,
) -> Claim:
    lifecycle.check("available", target)
    order = await warehouse_order(session, warehouses)
    taken: list[int] = []  # codes moved by earlier attempts: a later attempt claims only the rest
    for _ in range(CLAIM_ATTEMPTS):
        if sku.stock_kind == "segment":
            claim = await _claim_serials(db, session, sku, quantity, order_id, target, hold_until, order)
        else:
            claim = await _claim_codes(db, session, sku, quantity, order_id, target, hold_until, order, taken)
        if claim is not None:
            return claim
        # Rows we skipped or lost to a concurrent claim may still free up: look at the truth once more.
        if await available_units(session, sku, warehouses=order) < quantity - len(taken):
            break
    # The codes moved so far go back with the caller's transaction, which this refusal rolls back.
    raise OutOfStock(
        sku.id, wanted=quantity, available=len(taken) + await available_units(session, sku, warehouses=order)
    )


async def _claim_codes(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    order_id: int,
    target: str,
    hold_until: datetime | None,
    order: list[int],
    taken: list[int],
) -> Claim | None:
    """Claim and move the codes in one statement per warehouse (`claim_and_move_statement`); None while fewer
    than `quantity` are taken (`taken` keeps those moved, for the next attempt)."""
    sold_at = clock.now() if target == "sold" else None
    if not db.protect:  # test-only: the naive claim every race test must first show to be broken
        ids = tuple(await claim_codes(db, session, sku.id, quantity, warehouses=order))
        if len(ids) < quantity:
            return None
        await session.execute(
            update(Code).where(Code.id.in_(ids)).values(status=target, order_id=order_id, hold_until=hold_until)
        )
        return Claim(code_ids=ids)
    values = {"status": target, "order_id": order_id, "hold_until": hold_until, "sold_at": sold_at}
    for warehouse_id in order:
        if len(taken) >= quantity:
            break
        stmt = claim_and_move_statement(db, sku.id, warehouse_id, quantity - len(taken), values)
        moved = (await session.execute(stmt)).all()
        # RETURNING keeps no order: put them back in the claim's (lowest expiry first, then id)
        taken.extend(row.id for row in sorted(moved, key=lambda row: (row.expires_on is None, row.expires_on, row.id)))
    return Claim(code_ids=tuple(taken)) if len(taken) >= quantity else None


def claim_and_move_statement(
    db: Database, sku_id: int, warehouse_id: int, quantity: int, values: dict[str, Any]
) -> Any:
    """Claim (`claim_codes_statement`) and move the claimed codes in one statement, returning (id, expires_on).

    The claim is a materialized CTE, run once: the UPDATE moves exactly the rows it locked, and
    `status = 'available'` is checked again on each (on PostgreSQL a row locked by nobody else is
    still available; on SQLite the IMMEDIATE transaction holds every writer off).
    """
    picked = claim_codes_statement(db, sku_id, warehouse_id, quantity).cte("picked").prefix_with("MATERIALIZED")
    return (
        update(Code)
        .where(Code.id.in_(select(picked.c.id)), _CODE_AVAILABLE)
        .values(**values)
        .returning(Code.id, Code.expires_on)
        .execution_options(synchronize_session=False)
    )


async def _claim_serials(
    db: Database,
    session: AsyncSession,
    sku: Sku,
    quantity: int,
    order_id: int,
    target: str,
    hold_until: datetime | None,
    order: list[int],
) -> Claim | None:
    taken: list[tuple[int, int, int]] = []
    remaining = quantity
    for warehouse_id in order:
        if remaining == 0:
            break
        for row in await _ranges_to_take(db, session, sku.id, warehouse_id, remaining):
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


async def _ranges_to_take(
    db: Database, session: AsyncSession, sku_id: int, warehouse_id: int, wanted: int
) -> list[Row[*tuple[Any, ...]]]:
    """A warehouse's available ranges to cut `wanted` serials from, locked (waiting).

    One contiguous range if any piece is large enough; else every piece in FEFO order.
    """
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
        .where(SegmentRange.sku_id == sku_id, SegmentRange.warehouse_id == warehouse_id, _RANGE_AVAILABLE)
        .order_by(SegmentRange.expires_on.asc().nulls_last(), SegmentRange.id)
    )
    rows = list((await session.execute(db.lock(base.where(wanted <= _RANGE_SIZE).limit(1)))).all())
    if not rows:
        rows = list((await session.execute(db.lock(base))).all())
    return rows


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
    if not await _cut_front(session, row, take):
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


async def _cut_front(session: AsyncSession, row: Row[*tuple[Any, ...]], take: int) -> bool:
    """Shrink an available range by its first `take` serials (the caller adds the piece they become)."""
    result = await session.execute(
        update(SegmentRange)
        .where(SegmentRange.id == row.id, SegmentRange.first_serial == row.first_serial, _RANGE_AVAILABLE)
        .values(first_serial=row.first_serial + take)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def relocate(
    db: Database, session: AsyncSession, sku: Sku, units: int, *, source: int, target: int, exact: bool
) -> int:
    """Move up to `units` available units of `sku` from warehouse `source` to `target`; returns the units moved.

    Codes are claimed as a sale claims them (FEFO, SKIP LOCKED) and change warehouse;
    serial ranges are cut as a sale cuts them and the piece changes warehouse. Their
    state stays `available`. With `exact`, fewer than `units` raises `OutOfStock`
    before any row changes.
    """
    if units <= 0:
        return 0
    if sku.stock_kind == "segment":
        return await _relocate_serials(db, session, sku, units, source, target, exact)
    return await _relocate_codes(db, session, sku, units, source, target, exact)


async def _relocate_codes(
    db: Database, session: AsyncSession, sku: Sku, units: int, source: int, target: int, exact: bool
) -> int:
    ids: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        ids = await claim_codes(db, session, sku.id, units, warehouses=[source])
        if len(ids) == units or not exact:
            break
        # Codes skipped because a concurrent claim held them may free up: retry while the truth says enough.
        if await available_units(session, sku, warehouses=[source]) < units:
            break
    if exact and len(ids) < units:
        raise OutOfStock(sku.id, wanted=units, available=await available_units(session, sku, warehouses=[source]))
    step = db.chunk_size()
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        result = await session.execute(
            update(Code)
            .where(Code.id.in_(chunk), Code.warehouse_id == source, _CODE_AVAILABLE)
            .values(warehouse_id=target)
            .execution_options(synchronize_session=False)
        )
        moved: int = result.rowcount  # type: ignore[attr-defined]
        if moved != len(chunk):
            raise IllegalTransition(
                f"{len(chunk)} claimed code(s) should have changed warehouse, {moved} did",
                expected=len(chunk),
                moved=moved,
            )
    return len(ids)


async def _relocate_serials(
    db: Database, session: AsyncSession, sku: Sku, units: int, source: int, target: int, exact: bool
) -> int:
    rows = await _ranges_to_take(db, session, sku.id, source, units)
    available = sum(row.last_serial - row.first_serial + 1 for row in rows)
    if exact and available < units:
        raise OutOfStock(sku.id, wanted=units, available=available)
    remaining = units
    for row in rows:
        if remaining == 0:
            break
        take = min(row.last_serial - row.first_serial + 1, remaining)
        if not await _move_range(session, row, take, target):
            raise IllegalTransition(f"serial range {row.id} changed under its lock", range_id=row.id)
        remaining -= take
    return units - remaining


async def _move_range(session: AsyncSession, row: Row[*tuple[Any, ...]], take: int, warehouse_id: int) -> bool:
    """Move the first `take` serials of an available range to another warehouse, still available."""
    if row.first_serial + take - 1 == row.last_serial:
        result = await session.execute(
            update(SegmentRange)
            .where(SegmentRange.id == row.id, SegmentRange.first_serial == row.first_serial, _RANGE_AVAILABLE)
            .values(warehouse_id=warehouse_id)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if not await _cut_front(session, row, take):
        return False
    session.add(
        SegmentRange(
            segment_id=row.segment_id,
            sku_id=row.sku_id,
            warehouse_id=warehouse_id,
            first_serial=row.first_serial,
            last_serial=row.first_serial + take - 1,
            status="available",
            expires_on=row.expires_on,
        )
    )
    await session.flush()
    return True
