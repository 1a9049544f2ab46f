"""The restore drill: sell, back up, sell more, crash, restore — and the restored shop is the shop at the
backup's moment, whole: nothing sold after it half-there, every invariant kept, selling resumes."""

import asyncio
import threading
from pathlib import Path

import pytest
from tests.support.builders import Bought, buy, given_sku_with_codes, order_view, place_order, stock_of
from tests.support.drills import broken_invariants, order_numbers

from kaquan import runtime as runtime_module
from kaquan.kit import outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.operations import backups
from kaquan.operations.backups import sqlite as sqlite_backups
from kaquan.runtime import Runtime


def ignore(_done: int, _total: int) -> None:
    return None


async def test_a_restore_brings_back_the_shop_at_the_backup_and_nothing_after(
    rt: Runtime, db: Database, settings: Settings, tmp_path: Path
) -> None:
    sku = await given_sku_with_codes(rt, 30)
    before = [await buy(rt, sku) for _ in range(4)]
    unpaid, _, _ = await place_order(rt, sku, 2)
    await outbox.run_due(db)
    at_backup = await stock_of(rt, sku)
    manifest = await backups.backup(db.url, tmp_path / "backup", progress=ignore)

    after = [await buy(rt, sku) for _ in range(3)]
    await place_order(rt, sku, 1)  # unpaid when the process dies
    await db.dispose()  # the crash: the process is gone, the database keeps what it committed

    restored = await backups.restore(db.url, tmp_path / "backup", replace=True, progress=ignore)
    assert restored.replaced and not restored.migrated
    assert manifest.counts["orders"] == 5

    again = await runtime_module.start(settings, db=db)
    try:
        numbers = await order_numbers(db)
        assert numbers == {order.number for order in before} | {unpaid}
        assert not numbers & {order.number for order in after}
        assert await stock_of(again, sku) == at_backup
        assert await broken_invariants(db) == []
        for order in before:  # the codes open under the master key kept outside the backup
            assert (await order_view(again, order.number, order.lookup_secret)).codes == order.codes

        resumed = [await buy(again, sku) for _ in range(2)]  # ids and sequences carry on after the restore
        await outbox.run_due(db)
        assert all(order.ok for order in resumed), resumed
        assert await broken_invariants(db) == []
    finally:
        await again.close()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # PostgreSQL's snapshot is pg_dump's own
async def test_a_sqlite_backup_taken_while_the_shop_sells_is_one_moment_of_it(
    rt: Runtime, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 200)
    for _ in range(3):
        await buy(rt, sku)
    committed = threading.Event()
    sold_during: list[Bought] = []
    backing_up = True

    def step(_done: int, _total: int) -> None:
        committed.clear()
        committed.wait(timeout=5)  # each step of the copy lets one more sale commit first

    async def keep_selling() -> None:
        while backing_up:
            sold_during.append(await buy(rt, sku))
            committed.set()

    monkeypatch.setattr(sqlite_backups, "PAGES_PER_STEP", 16)
    seller = asyncio.create_task(keep_selling())
    manifest = await backups.backup(db.url, tmp_path / "backup", progress=step)
    backing_up = False
    await seller

    assert len(sold_during) >= 3, "sales committed while the copy ran"
    assert all(order.ok for order in sold_during)
    copy = Database(f"sqlite:///{tmp_path / 'backup' / 'kaquan.db'}")
    try:
        assert await broken_invariants(copy) == []
        in_copy = await order_numbers(copy)
        assert len(in_copy) == manifest.counts["orders"] < 3 + len(sold_during)
    finally:
        await copy.dispose()
