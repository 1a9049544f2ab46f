"""Point-in-time recovery on a real second PostgreSQL cluster (docs/operations.md, "Point-in-time recovery"):
a base backup, WAL archived as the shop sells, a crash, and a recovery to a chosen moment that brings back
everything committed before it, nothing after it, and every invariant whole."""

import asyncio
import base64
from pathlib import Path

import pytest
from tests.support.builders import buy, given_sku_with_codes, order_view
from tests.support.drills import broken_invariants, order_numbers
from tests.support.pg_cluster import new_cluster, server_bin_dir

from kaquan import runtime as runtime_module
from kaquan.kit import outbox
from kaquan.kit.config import Settings
from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database
from kaquan.kit.migrate import upgrade

BIN_DIR = server_bin_dir()
pytestmark = pytest.mark.skipif(
    BIN_DIR is None, reason="the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres) are not installed"
)


async def test_recovery_to_a_moment_keeps_what_was_sold_before_it_and_nothing_after(tmp_path: Path) -> None:
    assert BIN_DIR is not None
    settings = Settings(var_dir=tmp_path / "var", master_key=base64.b64encode(new_key()).decode(), dev_gateway=True)
    with new_cluster(BIN_DIR) as primary:
        primary.start()
        primary.sql("CREATE DATABASE kaquan", database="postgres")
        db = Database(primary.url)
        await upgrade(db)
        rt = await runtime_module.start(settings, db=db)
        sku = await given_sku_with_codes(rt, 40)
        early = [await buy(rt, sku) for _ in range(2)]
        primary.base_backup(primary.root / "base")
        middle = [await buy(rt, sku) for _ in range(3)]  # only in the archived WAL
        await outbox.run_due(db)
        moment = primary.sql("SELECT clock_timestamp()")
        await asyncio.sleep(0.05)  # the sales after the moment commit after it
        late = [await buy(rt, sku) for _ in range(3)]
        await outbox.run_due(db)
        closed = primary.sql("SELECT pg_walfile_name(pg_switch_wal())")
        primary.wait_until("SELECT last_archived_wal FROM pg_stat_archiver", closed)
        await rt.close()
        await db.dispose()
        primary.crash()

        restored = primary.recover(primary.root / "base", target_time=moment)

        db = Database(restored.url)
        again = await runtime_module.start(settings, db=db)
        try:
            assert await order_numbers(db) == {order.number for order in early + middle}
            assert not await order_numbers(db) & {order.number for order in late}
            assert await broken_invariants(db) == []
            for order in middle:
                assert (await order_view(again, order.number, order.lookup_secret)).codes == order.codes
            resumed = await buy(again, sku)
            assert resumed.ok, resumed
            assert await broken_invariants(db) == []
        finally:
            await again.close()
            await db.dispose()
