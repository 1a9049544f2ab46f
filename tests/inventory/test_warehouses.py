"""Warehouses: claims follow a warehouse order, and transfers move available units while stock adds up.

Stock per warehouse keeps invariant 2 through transfers: imported into a warehouse
is its batches plus the units transferred in minus the units transferred out.
"""

import asyncio
from datetime import date

import pytest
from sqlalchemy import func, select
from tests.support.builders import (
    GivenSku,
    buy,
    given_codes,
    given_sku,
    given_sku_with_codes,
    place_order,
    random_codes,
)
from tests.support.warehouses import HOLDERS, MAIN, given_segment, given_warehouse, levels, reserve, units

from kaquan.audit.models import AuditEntry
from kaquan.catalog import service as catalog
from kaquan.inventory import warehouses
from kaquan.inventory.claims import allocation
from kaquan.inventory.errors import OutOfStock, WarehouseNotFound
from kaquan.inventory.models import Code, SegmentRange, StockTransfer, Warehouse
from kaquan.inventory.warehouses import (
    BadUnits,
    BadWarehouse,
    ReasonRequired,
    SameWarehouse,
    WarehouseExists,
    WarehouseOutOfStock,
)
from kaquan.kit.errors import DomainError
from kaquan.orders import service as orders
from kaquan.runtime import Runtime

SOON, LATER, LATEST = date(2027, 1, 31), date(2027, 6, 30), date(2027, 12, 31)


async def placed(rt: Runtime, code_ids: tuple[int, ...]) -> list[tuple[int, date | None]]:
    """(warehouse, expiry) of each claimed code, in claim order."""
    async with rt.db.read() as session:
        rows = dict(
            (row.id, (row.warehouse_id, row.expires_on))
            for row in await session.execute(
                select(Code.id, Code.warehouse_id, Code.expires_on).where(Code.id.in_(code_ids))
            )
        )
    return [rows[code_id] for code_id in code_ids]


async def transfer(rt: Runtime, sku: GivenSku, source: int, target: int, count: int, reason: str = "restock") -> int:
    async with rt.db.transaction() as session:
        done = await warehouses.transfer_stock(
            rt.db, session, sku.id, source, target, count, actor="alice", reason=reason
        )
        return done.id


async def row_counts(rt: Runtime) -> dict[str, int]:
    async with rt.db.read() as session:
        return {
            model.__tablename__: int((await session.execute(select(func.count()).select_from(model))).scalar_one())
            for model in (StockTransfer, AuditEntry, Warehouse, SegmentRange)
        }


# --- warehouses -----------------------------------------------------------------------------------


async def test_warehouses_are_created_listed_and_audited(rt: Runtime) -> None:
    backup = await given_warehouse(rt, "backup")
    agent = await given_warehouse(rt, "agent-42", kind="consignment", consignee="  Agent   Zhang ")

    async with rt.db.read() as session:
        listed = [(w.id, w.code, w.kind, w.consignee) for w in await warehouses.list_warehouses(session)]
        entries = list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())
    assert listed == [
        (MAIN, "main", "own", None),
        (backup, "backup", "own", None),
        (agent, "agent-42", "consignment", "Agent Zhang"),
    ]
    assert [(e.action, e.target, e.actor) for e in entries[-2:]] == [
        ("warehouse.created", "warehouse:backup", "test"),
        ("warehouse.created", "warehouse:agent-42", "test"),
    ]


@pytest.mark.parametrize(
    ("code", "kind", "consignee", "error"),
    [
        ("main", "own", None, WarehouseExists),
        ("has space", "own", None, BadWarehouse),
        ("-dash-first", "own", None, BadWarehouse),
        ("x" * 33, "own", None, BadWarehouse),
        ("store", "franchise", None, BadWarehouse),
        ("store", "own", "Agent Zhang", BadWarehouse),
    ],
)
async def test_a_bad_warehouse_is_refused_and_nothing_changes(
    rt: Runtime, code: str, kind: str, consignee: str | None, error: type[DomainError]
) -> None:
    before = await row_counts(rt)

    with pytest.raises(error):
        await given_warehouse(rt, code, kind=kind, consignee=consignee)

    assert await row_counts(rt) == before


# --- claims follow the warehouse order ------------------------------------------------------------


async def test_a_claim_takes_the_first_warehouse_before_the_next_even_if_the_next_expires_sooner(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(3), expires_on=LATEST)
    await given_codes(rt, sku, random_codes(3), expires_on=LATER)
    await given_codes(rt, sku, random_codes(5), warehouse="backup", expires_on=SOON)

    claim = await reserve(rt, sku, 4, [MAIN, backup])

    assert await placed(rt, claim.code_ids) == [(MAIN, LATER)] * 3 + [(MAIN, LATEST)]


async def test_a_claim_spills_into_the_next_warehouse_when_the_first_runs_out(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(2), expires_on=LATER)
    await given_codes(rt, sku, random_codes(3), warehouse="backup", expires_on=LATEST)
    await given_codes(rt, sku, random_codes(3), warehouse="backup", expires_on=SOON)

    claim = await reserve(rt, sku, 4, [MAIN, backup])

    assert await placed(rt, claim.code_ids) == [(MAIN, LATER)] * 2 + [(backup, SOON)] * 2
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (2, 0, 2, 0, 0)
    assert units(by_warehouse["backup"]) == (6, 4, 2, 0, 0)


async def test_the_order_given_is_the_order_taken(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(3), expires_on=SOON)
    await given_codes(rt, sku, random_codes(3), warehouse="backup", expires_on=LATEST)

    claim = await reserve(rt, sku, 4, [backup, MAIN])

    assert await placed(rt, claim.code_ids) == [(backup, LATEST)] * 3 + [(MAIN, SOON)]


async def test_no_order_means_every_warehouse_by_id(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    agent = await given_warehouse(rt, "agent", kind="consignment")
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(2), warehouse="agent", expires_on=SOON)
    await given_codes(rt, sku, random_codes(2), warehouse="backup", expires_on=LATER)
    await given_codes(rt, sku, random_codes(2), expires_on=LATEST)

    claim = await reserve(rt, sku, 6, None)

    assert [w for w, _ in await placed(rt, claim.code_ids)] == [MAIN, MAIN, backup, backup, agent, agent]


async def test_a_warehouse_outside_the_order_is_never_touched(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 10)
    await given_codes(rt, sku, random_codes(2), warehouse="backup")
    before = await levels(rt, sku)

    with pytest.raises(OutOfStock) as refused:
        await reserve(rt, sku, 3, [backup])

    assert refused.value.details == {"sku_id": sku.id, "wanted": 3, "available": 2}
    assert await levels(rt, sku) == before
    with pytest.raises(OutOfStock):
        await reserve(rt, sku, 1, [])


async def test_claim_codes_locks_codes_in_order_and_leaves_them_to_the_caller(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(2), expires_on=LATER)
    await given_codes(rt, sku, random_codes(4), warehouse="backup", expires_on=SOON)

    async with rt.db.transaction() as session:
        ids = await allocation.claim_codes(rt.db, session, sku.id, 3, warehouses=[MAIN, backup])
        everything = await allocation.claim_codes(rt.db, session, sku.id, 100)
        statuses = set((await session.execute(select(Code.status).where(Code.id.in_(ids)))).scalars())

    assert [w for w, _ in await placed(rt, tuple(ids))] == [MAIN, MAIN, backup]
    assert len(everything) == 6
    assert everything[:3] == ids
    assert statuses == {"available"}


async def test_a_segment_claim_follows_the_warehouse_order_too(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt, stock_kind="segment")
    await given_segment(rt, sku, 1, 5, expires_on=LATER)
    await given_segment(rt, sku, 100, 199, warehouse="backup", expires_on=SOON)

    first = await reserve(rt, sku, 8, [MAIN, backup])
    second = await reserve(rt, sku, 2, [backup, MAIN])

    assert [(first_serial, last) for _, first_serial, last in first.serial_ranges] == [(1, 5), (100, 102)]
    assert [(first_serial, last) for _, first_serial, last in second.serial_ranges] == [(103, 104)]
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (5, 0, 5, 0, 0)
    assert units(by_warehouse["backup"]) == (100, 95, 5, 0, 0)


async def test_sell_now_follows_the_warehouse_order(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 5)
    await given_codes(rt, sku, random_codes(5), warehouse="backup")

    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        claim = await allocation.sell_now(rt.db, session, target, 2, order_id=next(HOLDERS), warehouses=[backup])

    assert [w for w, _ in await placed(rt, claim.code_ids)] == [backup, backup]
    assert units((await levels(rt, sku))["backup"]) == (5, 3, 0, 2, 0)


# --- transfers ------------------------------------------------------------------------------------


async def test_a_transfer_moves_exactly_n_available_codes_and_records_it(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 10)

    transfer_id = await transfer(rt, sku, MAIN, backup, 4, reason="  stock the  backup ")

    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (6, 6, 0, 0, 0)
    assert units(by_warehouse["backup"]) == (4, 4, 0, 0, 0)
    async with rt.db.read() as session:
        [listed] = await warehouses.list_transfers(session, sku_id=sku.id)
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()
    assert (listed.id, listed.from_warehouse, listed.to_warehouse, listed.units) == (transfer_id, "main", "backup", 4)
    assert (listed.actor, listed.reason, listed.rule_id) == ("alice", "stock the backup", None)
    assert (entry.action, entry.actor, entry.target) == ("stock.transferred", "alice", f"sku:{sku.code}")
    assert entry.after == {
        "transfer": transfer_id,
        "from": "main",
        "to": "backup",
        "units": 4,
        "reason": "stock the backup",
    }


async def test_only_available_units_move_and_more_than_available_is_refused_with_nothing_changed(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 5)
    await reserve(rt, sku, 3, [MAIN])
    before, counts = await levels(rt, sku), await row_counts(rt)

    with pytest.raises(WarehouseOutOfStock) as refused:
        await transfer(rt, sku, MAIN, backup, 3)

    assert refused.value.code == "out_of_stock"
    assert refused.value.details == {"sku_id": sku.id, "warehouse": "main", "wanted": 3, "available": 2}
    assert await levels(rt, sku) == before
    assert await row_counts(rt) == counts


@pytest.mark.parametrize(
    ("source", "target", "count", "reason", "error"),
    [
        (MAIN, "backup", 0, "restock", BadUnits),
        (MAIN, "backup", -3, "restock", BadUnits),
        (MAIN, MAIN, 1, "restock", SameWarehouse),
        (MAIN, 999, 1, "restock", WarehouseNotFound),
        (999, MAIN, 1, "restock", WarehouseNotFound),
        (MAIN, "backup", 1, "   ", ReasonRequired),
    ],
)
async def test_a_bad_transfer_is_refused_and_nothing_changes(
    rt: Runtime, source: int, target: int | str, count: int, reason: str, error: type[DomainError]
) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 5)
    before, counts = await levels(rt, sku), await row_counts(rt)

    with pytest.raises(error):
        await transfer(rt, sku, source, backup if target == "backup" else int(target), count, reason=reason)

    assert await levels(rt, sku) == before
    assert await row_counts(rt) == counts


async def test_a_segment_transfer_cuts_a_range_and_moves_the_piece(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku(rt, stock_kind="segment")
    await given_segment(rt, sku, 1, 10)
    await given_segment(rt, sku, 101, 103, expires_on=SOON)

    await transfer(rt, sku, MAIN, backup, 5)
    await transfer(rt, sku, MAIN, backup, 6)

    async with rt.db.read() as session:
        ranges = (await session.execute(select(SegmentRange).where(SegmentRange.sku_id == sku.id))).scalars()
        pieces = sorted((r.warehouse_id, r.first_serial, r.last_serial, r.status) for r in ranges)
    # The piece of the range big enough is taken whole first; then FEFO, as a sale takes them.
    assert pieces == [
        (MAIN, 9, 10, "available"),
        (backup, 1, 5, "available"),
        (backup, 6, 8, "available"),
        (backup, 101, 103, "available"),
    ]
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (2, 2, 0, 0, 0)
    assert units(by_warehouse["backup"]) == (11, 11, 0, 0, 0)
    with pytest.raises(WarehouseOutOfStock):
        await transfer(rt, sku, MAIN, backup, 3)


async def test_stock_adds_up_per_warehouse_through_transfers_sales_and_releases(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 20)
    await transfer(rt, sku, MAIN, backup, 12)
    await reserve(rt, sku, 5, [backup])  # held by an unpaid order for a while
    bought = await buy(rt, sku, 3)  # no order: main first
    number, _, _ = await place_order(rt, sku, 4)
    async with rt.db.transaction() as session:
        await orders.cancel(rt.db, session, (await orders.by_number(session, number)).id)
    await transfer(rt, sku, backup, MAIN, 6)
    await transfer(rt, sku, MAIN, backup, 2)

    assert bought.ok
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (20 - 12 + 6 - 2, 8 - 3 + 6 - 2, 0, 3, 0)
    assert units(by_warehouse["backup"]) == (12 - 6 + 2, 7 - 6 + 2, 5, 0, 0)


async def test_transfers_racing_buyers_never_move_a_sold_code_and_stock_adds_up(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 40)

    async def move() -> str:
        try:
            await transfer(rt, sku, MAIN, backup, 15)
            return "moved"
        except DomainError as exc:
            return exc.code

    moving = asyncio.gather(move(), move())
    buying = asyncio.gather(*(buy(rt, sku) for _ in range(20)))
    moves, bought = await asyncio.gather(moving, buying)

    sold = [code for b in bought if b.ok for code in b.codes]
    assert len(sold) == len(set(sold))
    by_warehouse = await levels(rt, sku)
    moved = 15 * moves.count("moved")
    assert set(moves) <= {"moved", "out_of_stock", "busy"}
    assert by_warehouse["main"].imported == 40 - moved
    assert sum(row.sold for row in by_warehouse.values()) == len(sold)
    assert sum(row.available + row.sold for row in by_warehouse.values()) == 40
    async with rt.db.read() as session:
        in_backup = (
            await session.execute(select(func.count()).select_from(Code).where(Code.warehouse_id == backup))
        ).scalar_one()
    assert in_backup == moved


async def test_available_units_count_the_warehouses_asked_and_stop_at_the_bound(rt: Runtime) -> None:
    backup = await given_warehouse(rt)
    sku = await given_sku_with_codes(rt, 7)
    await given_codes(rt, sku, random_codes(3), warehouse="backup")
    serials = await given_sku(rt, stock_kind="segment")
    await given_segment(rt, serials, 1, 50, warehouse="backup")

    async with rt.db.read() as session:
        codes_sku, segment_sku = await catalog.get_sku(session, sku.id), await catalog.get_sku(session, serials.id)
        counted = [
            await allocation.available_units(session, codes_sku),
            await allocation.available_units(session, codes_sku, warehouses=[backup]),
            await allocation.available_units(session, codes_sku, warehouses=[MAIN], at_most=5),
            await allocation.available_units(session, segment_sku, warehouses=[backup]),
            await allocation.available_units(session, segment_sku, warehouses=[MAIN]),
            await allocation.available_units(session, segment_sku, at_most=20),
        ]

    assert counted == [10, 3, 5, 50, 0, 20]
