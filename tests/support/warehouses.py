"""Warehouses in tests: a warehouse, a segment in one, a claim in a given warehouse order, stock per warehouse."""

import itertools
from datetime import date, timedelta

from tests.support.builders import GivenSku

from kaquan.catalog import service as catalog
from kaquan.inventory import warehouses
from kaquan.inventory.claims import allocation
from kaquan.inventory.claims.allocation import Claim
from kaquan.inventory.intake import importing, segments
from kaquan.inventory.levels import Stock, stock
from kaquan.kit import clock
from kaquan.runtime import Runtime

MAIN = 1  # the warehouse the core migration creates, where test batches go
HOLDERS = itertools.count(9000)  # order ids for claims no order placed


async def given_warehouse(rt: Runtime, code: str = "backup", *, kind: str = "own", consignee: str | None = None) -> int:
    async with rt.db.transaction() as session:
        created = await warehouses.create_warehouse(
            rt.db, session, code, code.title(), kind=kind, consignee=consignee, actor="test"
        )
        return created.id


async def given_segment(
    rt: Runtime, sku: GivenSku, start: int, end: int, *, warehouse: str = "main", expires_on: date | None = None
) -> None:
    async with rt.db.transaction() as session:
        await segments.add_segment(
            rt.db,
            session,
            await catalog.get_sku(session, sku.id),
            prefix="GC",
            width=8,
            start=start,
            end=end,
            meta=importing.BatchMeta(warehouse=warehouse, expires_on=expires_on),
            actor="test",
        )


async def levels(rt: Runtime, sku: GivenSku) -> dict[str, Stock]:
    """Stock of a SKU per warehouse code; every row must add up."""
    async with rt.db.read() as session:
        rows = await stock(session, sku_id=sku.id)
    assert all(row.adds_up for row in rows), rows
    return {row.warehouse: row for row in rows}


def units(row: Stock) -> tuple[int, int, int, int, int]:
    """(imported, available, reserved, sold, voided)."""
    return row.imported, row.available, row.reserved, row.sold, row.voided


async def reserve(rt: Runtime, sku: GivenSku, quantity: int, warehouses_order: list[int] | None) -> Claim:
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        return await allocation.reserve(
            rt.db,
            session,
            target,
            quantity,
            order_id=next(HOLDERS),
            hold_until=clock.now() + timedelta(minutes=15),
            warehouses=warehouses_order,
        )
