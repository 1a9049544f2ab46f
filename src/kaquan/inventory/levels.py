"""Stock by SKU and warehouse, derived from the rows themselves (never from a cached counter)."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.models import Batch, Code, SegmentRange, StockTransfer, Warehouse
from kaquan.kit.db import Database

_RANGE_SIZE = SegmentRange.last_serial - SegmentRange.first_serial + 1


@dataclass
class Stock:
    """Units per state; `sold` includes `redeemed`. Invariant: available+reserved+sold+voided = imported.

    `imported` counts what came into the warehouse: its batches, plus units transferred
    in, minus units transferred out.
    """

    sku_id: int
    warehouse: str
    imported: int = 0
    available: int = 0
    reserved: int = 0
    sold: int = 0
    redeemed: int = 0
    voided: int = 0

    @property
    def adds_up(self) -> bool:
        return self.available + self.reserved + self.sold + self.voided == self.imported


async def stock(session: AsyncSession, *, sku_id: int | None = None) -> list[Stock]:
    """One row per (SKU, warehouse) that ever received stock, by import or by transfer."""
    warehouses = dict((await session.execute(select(Warehouse.id, Warehouse.code))).all())
    rows: dict[tuple[int, int], Stock] = {}

    def row(sku: int, warehouse: int) -> Stock:
        return rows.setdefault((sku, warehouse), Stock(sku, warehouses[warehouse]))

    imported = select(Batch.sku_id, Batch.warehouse_id, func.sum(Batch.quantity)).group_by(
        Batch.sku_id, Batch.warehouse_id
    )
    codes = select(Code.sku_id, Code.warehouse_id, Code.status, func.count()).group_by(
        Code.sku_id, Code.warehouse_id, Code.status
    )
    serials = select(
        SegmentRange.sku_id, SegmentRange.warehouse_id, SegmentRange.status, func.sum(_RANGE_SIZE)
    ).group_by(SegmentRange.sku_id, SegmentRange.warehouse_id, SegmentRange.status)
    moved_in = select(StockTransfer.sku_id, StockTransfer.to_warehouse_id, func.sum(StockTransfer.units)).group_by(
        StockTransfer.sku_id, StockTransfer.to_warehouse_id
    )
    moved_out = select(StockTransfer.sku_id, StockTransfer.from_warehouse_id, func.sum(StockTransfer.units)).group_by(
        StockTransfer.sku_id, StockTransfer.from_warehouse_id
    )
    if sku_id is not None:
        imported = imported.where(Batch.sku_id == sku_id)
        codes = codes.where(Code.sku_id == sku_id)
        serials = serials.where(SegmentRange.sku_id == sku_id)
        moved_in = moved_in.where(StockTransfer.sku_id == sku_id)
        moved_out = moved_out.where(StockTransfer.sku_id == sku_id)
    for sku, warehouse, total in await session.execute(imported):
        row(sku, warehouse).imported = int(total)
    for transfers, sign in ((moved_in, 1), (moved_out, -1)):
        for sku, warehouse, units in await session.execute(transfers):
            row(sku, warehouse).imported += sign * int(units)
    for stmt in (codes, serials):
        for sku, warehouse, status, units in await session.execute(stmt):
            entry = row(sku, warehouse)
            if status == "redeemed":
                entry.redeemed += int(units)
                entry.sold += int(units)
            else:
                setattr(entry, status, getattr(entry, status) + int(units))
    return sorted(rows.values(), key=lambda s: (s.sku_id, s.warehouse))


async def available_by_sku(session: AsyncSession) -> dict[int, int]:
    """Available units per SKU, for display (the shop's 'in stock' badges).

    Reads only the partial indexes of available rows, so it stays cheap however much has been sold.
    """
    codes = select(Code.sku_id, func.count()).where(Code.status == literal_column("'available'")).group_by(Code.sku_id)
    serials = (
        select(SegmentRange.sku_id, func.sum(_RANGE_SIZE))
        .where(SegmentRange.status == literal_column("'available'"))
        .group_by(SegmentRange.sku_id)
    )
    result: dict[int, int] = {}
    for stmt in (codes, serials):
        for sku_id, units in (await session.execute(stmt)).all():
            result[sku_id] = result.get(sku_id, 0) + int(units)
    return result


async def available_units(session: AsyncSession, sku_id: int, *, at_most: int) -> int:
    """Available units of one SKU, counted only up to `at_most` (reads at most that many code index entries)."""
    if at_most <= 0:
        return 0
    codes = (
        select(Code.id).where(Code.sku_id == sku_id, Code.status == literal_column("'available'")).limit(at_most)
    ).subquery()
    serials = select(func.coalesce(func.sum(_RANGE_SIZE), 0)).where(
        SegmentRange.sku_id == sku_id, SegmentRange.status == literal_column("'available'")
    )
    both = select(select(func.count()).select_from(codes).scalar_subquery() + serials.scalar_subquery())
    return min(int((await session.execute(both)).scalar_one()), at_most)


def per_sku(rows: list[Stock]) -> list[Stock]:
    """The rows of `stock` summed over warehouses: one row per SKU (warehouse `*`)."""
    totals: dict[int, Stock] = {}
    for row in rows:
        total = totals.setdefault(row.sku_id, Stock(row.sku_id, "*"))
        for name in ("imported", "available", "reserved", "sold", "redeemed", "voided"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return [totals[sku_id] for sku_id in sorted(totals)]


async def batches_of_sku(session: AsyncSession, sku_id: int, *, limit: int = 200) -> list[tuple[Batch, str]]:
    """A SKU's batches, newest first, each with the code of its warehouse."""
    rows = await session.execute(
        select(Batch, Warehouse.code)
        .join(Warehouse, Warehouse.id == Batch.warehouse_id)
        .where(Batch.sku_id == sku_id)
        .order_by(Batch.id.desc())
        .limit(limit)
    )
    return [(batch, warehouse) for batch, warehouse in rows]


async def units_held(db: Database, session: AsyncSession, holders: Sequence[int]) -> dict[int, int]:
    """Units (codes and serials, in any state) that each of `holders` holds; a holder with none is left out.

    A code or range row names one holder: a unit sold twice shows as the first holder
    holding fewer units than it bought (the second sale took the row away from it).
    """
    held: dict[int, int] = {}
    ids = sorted(set(holders))
    for start in range(0, len(ids), db.chunk_size()):
        chunk = ids[start : start + db.chunk_size()]
        codes = select(Code.order_id, func.count()).where(Code.order_id.in_(chunk)).group_by(Code.order_id)
        serials = (
            select(SegmentRange.order_id, func.sum(_RANGE_SIZE))
            .where(SegmentRange.order_id.in_(chunk))
            .group_by(SegmentRange.order_id)
        )
        for stmt in (codes, serials):
            for holder, units in await session.execute(stmt):
                if holder is not None:  # never, by the IN list; the column is nullable
                    held[holder] = held.get(holder, 0) + int(units)
    return held
