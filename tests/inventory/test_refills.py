"""Refill rules: a warehouse under its threshold is refilled from its source, once, and the alert goes out.

The race that matters: two workers rebalancing at the same moment must not both
see the same shortfall and both move stock. The refill locks the rule rows of its
(SKU, warehouse) before it reads the stock; a control test shows the double move
is real without that lock.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from functools import partial

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.builders import GivenSku, given_codes, given_sku, given_sku_with_codes, random_codes
from tests.support.warehouses import MAIN, given_segment, given_warehouse, levels, reserve, units

from kaquan.audit.models import AuditEntry
from kaquan.catalog.models import Sku
from kaquan.inventory import refills
from kaquan.inventory.errors import WarehouseNotFound
from kaquan.inventory.models import RefillRule, StockTransfer
from kaquan.inventory.refills import LOW_STOCK_TOPIC, BadRule, Rule, RuleNotFound
from kaquan.inventory.warehouses import SameWarehouse, Transfer, list_transfers
from kaquan.kit import outbox
from kaquan.kit.errors import DomainError
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime
from kaquan.worker import run_once


async def add_rule(
    rt: Runtime, sku: GivenSku, warehouse: int, source: int = MAIN, *, threshold: int = 5, refill: int = 10
) -> Rule:
    async with rt.db.transaction() as session:
        return await refills.add_rule(
            rt.db, session, sku.id, warehouse, source, threshold=threshold, refill_units=refill, actor="alice"
        )


async def given_backup_with(rt: Runtime, sku: GivenSku, count: int) -> int:
    backup = await given_warehouse(rt)
    if count:
        await given_codes(rt, sku, random_codes(count), warehouse="backup")
    return backup


async def transfers(rt: Runtime, sku: GivenSku) -> list[Transfer]:
    async with rt.db.read() as session:
        return list(reversed(await list_transfers(session, sku_id=sku.id)))


async def alerts(rt: Runtime) -> list[dict[str, object]]:
    async with rt.db.read() as session:
        events = await session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.topic == LOW_STOCK_TOPIC).order_by(OutboxEvent.id)
        )
        return list(events.scalars())


async def test_a_warehouse_under_its_threshold_is_refilled_and_the_alert_goes_out(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 3)
    rule = await add_rule(rt, sku, backup, threshold=5, refill=10)

    made = await refills.rebalance(rt.db)

    [moved] = await transfers(rt, sku)
    assert made == [moved.id]
    assert (moved.from_warehouse, moved.to_warehouse, moved.units, moved.rule_id) == ("main", "backup", 10, rule.id)
    assert moved.actor == refills.SCHEDULER
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["backup"]) == (13, 13, 0, 0, 0)
    assert units(by_warehouse["main"]) == (40, 40, 0, 0, 0)
    assert await alerts(rt) == [
        {
            "sku_id": sku.id,
            "warehouse": "backup",
            "available": 3,
            "threshold": 5,
            "moved": 10,
            "source_warehouse": "main",
            "rule_id": rule.id,
        }
    ]


async def test_a_warehouse_at_its_threshold_is_left_alone_and_a_second_run_moves_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 5)
    await add_rule(rt, sku, backup, threshold=5)

    assert await refills.rebalance(rt.db) == []

    await reserve(rt, sku, 1, [backup])
    assert len(await refills.rebalance(rt.db)) == 1
    assert await refills.rebalance(rt.db) == []
    assert [t.units for t in await transfers(rt, sku)] == [10]
    assert len(await alerts(rt)) == 1


async def test_a_source_short_of_the_refill_moves_what_it_has(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 4)
    backup = await given_backup_with(rt, sku, 1)
    await add_rule(rt, sku, backup, threshold=5, refill=10)

    await refills.rebalance(rt.db)

    assert [t.units for t in await transfers(rt, sku)] == [4]
    [alert] = await alerts(rt)
    assert (alert["available"], alert["moved"]) == (1, 4)
    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["main"]) == (0, 0, 0, 0, 0)
    assert units(by_warehouse["backup"]) == (5, 5, 0, 0, 0)


async def test_a_warehouse_stuck_low_is_announced_once_until_it_recovers(rt: Runtime) -> None:
    sku = await given_sku(rt)
    backup = await given_backup_with(rt, sku, 2)
    rule = await add_rule(rt, sku, backup, threshold=5)

    await refills.rebalance(rt.db)
    await refills.rebalance(rt.db)

    assert await transfers(rt, sku) == []
    assert [(a["available"], a["moved"]) for a in await alerts(rt)] == [(2, 0)]
    async with rt.db.read() as session:
        [stuck] = await refills.list_rules(session, rule_id=rule.id)
    assert stuck.low_since is not None

    await given_codes(rt, sku, random_codes(5), warehouse="backup")
    await refills.rebalance(rt.db)
    await reserve(rt, sku, 6, [backup])
    await refills.rebalance(rt.db)

    assert [(a["available"], a["moved"]) for a in await alerts(rt)] == [(2, 0), (1, 0)]


async def test_a_second_rule_refills_only_when_the_first_source_falls_short(rt: Runtime) -> None:
    sku = await given_sku(rt)
    backup = await given_backup_with(rt, sku, 0)
    spare = await given_warehouse(rt, "spare")
    await given_codes(rt, sku, random_codes(2))
    await given_codes(rt, sku, random_codes(20), warehouse="spare")
    await add_rule(rt, sku, backup, MAIN, threshold=5, refill=10)
    await add_rule(rt, sku, backup, spare, threshold=5, refill=10)

    await refills.rebalance(rt.db)

    assert [(t.from_warehouse, t.units) for t in await transfers(rt, sku)] == [("main", 2), ("spare", 10)]
    assert (await levels(rt, sku))["backup"].available == 12


async def test_a_disabled_rule_moves_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 1)
    rule = await add_rule(rt, sku, backup)
    async with rt.db.transaction() as session:
        disabled = await refills.disable_rule(rt.db, session, rule.id, actor="alice")

    assert await refills.rebalance(rt.db) == []
    assert not disabled.active
    async with rt.db.read() as session:
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()
    assert (entry.action, entry.actor, entry.target) == ("refill_rule.disabled", "alice", f"refill_rule:{rule.id}")
    assert (entry.before, entry.after) == (
        {"threshold": 5, "refill_units": 10, "active": True},
        {"threshold": 5, "refill_units": 10, "active": False},
    )


async def test_serial_ranges_are_refilled_too(rt: Runtime) -> None:
    sku = await given_sku(rt, stock_kind="segment")
    backup = await given_warehouse(rt)
    await given_segment(rt, sku, 1, 100)
    await add_rule(rt, sku, backup, threshold=10, refill=25)

    await refills.rebalance(rt.db)

    by_warehouse = await levels(rt, sku)
    assert units(by_warehouse["backup"]) == (25, 25, 0, 0, 0)
    assert units(by_warehouse["main"]) == (75, 75, 0, 0, 0)


async def test_the_alert_handler_logs_the_low_stock(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 0)
    await add_rule(rt, sku, backup)
    await refills.rebalance(rt.db)

    with caplog.at_level(logging.WARNING, logger="kaquan.notifications"):
        assert await outbox.run_due(rt.db) == 1

    [line] = [r.getMessage() for r in caplog.records if r.name == "kaquan.notifications"]
    assert f"SKU {sku.id} has 0 available in warehouse backup (threshold 5); 10 moved from main" in line


async def test_the_worker_rebalances_at_most_every_few_seconds(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 0)
    await add_rule(rt, sku, backup, threshold=5, refill=6)

    assert await run_once(rt) >= 1
    await reserve(rt, sku, 2, [backup])
    assert await refills.rebalance_due(rt.db, every_s=3600) == 0, "ran a moment ago: not yet"
    assert len(await transfers(rt, sku)) == 1
    assert await refills.rebalance_due(rt.db, every_s=0) == 1


# --- concurrency ----------------------------------------------------------------------------------


async def test_two_rebalances_at_once_move_once(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 2)
    await add_rule(rt, sku, backup, threshold=5, refill=10)

    first, second = await asyncio.gather(refills.rebalance(rt.db), refills.rebalance(rt.db))

    assert len(first + second) == 1
    assert [t.units for t in await transfers(rt, sku)] == [10]
    assert (await levels(rt, sku))["backup"].available == 12
    assert len(await alerts(rt)) == 1


def meet_after_reading_stock(monkeypatch: pytest.MonkeyPatch, *, patience_s: float = 0.5) -> None:
    """An injected pause: each refill, having read the stock, waits (briefly) for the other to read it too."""
    read = refills._available_in
    arrived: list[int] = []
    everyone = asyncio.Event()

    async def read_then_wait(session: AsyncSession, sku: Sku, warehouse_id: int, threshold: int) -> int:
        available = await read(session, sku, warehouse_id, threshold)
        arrived.append(available)
        if len(arrived) >= 2:
            everyone.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), patience_s)
        return available

    monkeypatch.setattr(refills, "_available_in", read_then_wait)


async def two_refills_at_once(rt: Runtime, sku: GivenSku, warehouse: int) -> list[list[int] | BaseException]:
    def refill() -> Awaitable[list[int]]:
        return rt.db.run(partial(refills.refill, rt.db, sku_id=sku.id, warehouse_id=warehouse), attempts=1)

    return list(await asyncio.gather(refill(), refill(), return_exceptions=True))


async def test_two_refills_that_try_to_meet_under_the_lock_still_move_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 2)
    await add_rule(rt, sku, backup, threshold=5, refill=10)
    meet_after_reading_stock(monkeypatch)

    results = await two_refills_at_once(rt, sku, backup)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert [t.units for t in await transfers(rt, sku)] == [10]
    assert (await levels(rt, sku))["backup"].available == 12


async def test_without_the_rule_lock_two_refills_double_move(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: drop the waiting row locks (claims still skip locked codes) and both refills move."""
    if not rt.db.is_postgresql:
        pytest.skip("SQLite serializes every writer with BEGIN IMMEDIATE; the rule lock is PostgreSQL's protection")
    sku = await given_sku_with_codes(rt, 50)
    backup = await given_backup_with(rt, sku, 2)
    await add_rule(rt, sku, backup, threshold=5, refill=10)
    meet_after_reading_stock(monkeypatch)
    monkeypatch.setattr(rt.db, "lock", lambda stmt: stmt)

    results = await two_refills_at_once(rt, sku, backup)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert [t.units for t in await transfers(rt, sku)] == [10, 10], "the unlocked refills should both have moved"
    assert (await levels(rt, sku))["backup"].available == 22


# --- rules ----------------------------------------------------------------------------------------


async def test_adding_a_rule_again_updates_and_re_enables_it(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    backup = await given_backup_with(rt, sku, 0)
    first = await add_rule(rt, sku, backup, threshold=5, refill=10)
    async with rt.db.transaction() as session:
        await refills.disable_rule(rt.db, session, first.id, actor="alice")

    again = await add_rule(rt, sku, backup, threshold=8, refill=3)

    async with rt.db.read() as session:
        listed = await refills.list_rules(session, sku_id=sku.id)
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()
    assert listed == [again]
    assert (again.id, again.threshold, again.refill_units, again.active) == (first.id, 8, 3, True)
    assert (again.warehouse, again.source_warehouse) == ("backup", "main")
    assert entry.action == "refill_rule.set"
    assert entry.before == {"threshold": 5, "refill_units": 10, "active": False}


@pytest.mark.parametrize(
    ("warehouse", "source", "threshold", "refill", "error"),
    [
        ("backup", MAIN, 0, 10, BadRule),
        ("backup", MAIN, 5, -1, BadRule),
        ("backup", "backup", 5, 10, SameWarehouse),
        (999, MAIN, 5, 10, WarehouseNotFound),
        ("backup", 999, 5, 10, WarehouseNotFound),
    ],
)
async def test_a_bad_rule_is_refused_and_nothing_changes(
    rt: Runtime, warehouse: int | str, source: int | str, threshold: int, refill: int, error: type[DomainError]
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    backup = await given_backup_with(rt, sku, 0)

    def resolve(ref: int | str) -> int:
        return backup if ref == "backup" else int(ref)

    with pytest.raises(error):
        await add_rule(rt, sku, resolve(warehouse), resolve(source), threshold=threshold, refill=refill)

    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(RefillRule))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(StockTransfer))).scalar_one() == 0


async def test_disabling_an_unknown_rule_is_not_found(rt: Runtime) -> None:
    with pytest.raises(RuleNotFound):
        async with rt.db.transaction() as session:
            await refills.disable_rule(rt.db, session, 404, actor="alice")
