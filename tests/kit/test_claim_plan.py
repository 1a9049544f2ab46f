"""The claim reads the partial index of available codes: it never walks the sold history, and never sorts.

The known pitfall: with the status bound as a parameter, a prepared statement's
generic plan cannot prove `status = 'available'` and so cannot use a partial
index; the claim then scans every sold row of the SKU and slows as sales grow.
The index leads with (sku_id, warehouse_id), so a claim in one warehouse reads
its codes already in FEFO order: no sort of a SKU's million available codes.
"""

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from tests.support.builders import given_sku_with_codes
from tests.support.warehouses import MAIN

from kaquan.inventory.claims.allocation import claim_codes_statement
from kaquan.inventory.models import Code
from kaquan.runtime import Runtime

CLAIM_INDEX = "ix_inventory_codes_claim"


async def _sell_most_of(session: AsyncSession, sku_id: int) -> None:
    """Leave one code in fifty available, as in a shop that has sold for a while."""
    await session.execute(
        text("UPDATE inventory_codes SET status = 'sold' WHERE sku_id = :sku AND id % 50 <> 0"),
        {"sku": sku_id},
    )
    await session.execute(text("ANALYZE"))


async def _generic_plan(session: AsyncSession, sql: str, arguments: str) -> str:
    """The plan PostgreSQL uses for `sql` as a prepared statement once it settles on a generic plan."""
    await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    await session.execute(text(f"PREPARE probe AS {sql}"))
    plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) EXECUTE probe({arguments})"))).scalar_one()
    await session.execute(text("DEALLOCATE probe"))
    return json.dumps(plan)


async def test_the_claim_uses_the_partial_index_even_as_a_generic_prepared_plan(rt: Runtime) -> None:
    if not rt.db.is_postgresql:
        pytest.skip("prepared generic plans are a PostgreSQL matter; SQLite is checked below")
    sku = await given_sku_with_codes(rt, 2000)
    async with rt.db.transaction() as session:
        await _sell_most_of(session, sku.id)
    claim_sql = str(claim_codes_statement(rt.db, sku.id, MAIN, 5).compile(dialect=rt.db.engine.dialect))
    naive = (
        select(Code.id)
        .where(Code.sku_id == sku.id, Code.warehouse_id == MAIN, Code.status == "available")
        .order_by(Code.expires_on.asc().nulls_last(), Code.id)
        .limit(5)
    )
    naive_sql = str(naive.compile(dialect=rt.db.engine.dialect))

    async with rt.db.transaction() as session:
        ours = await _generic_plan(session, claim_sql, f"{sku.id}, {MAIN}, 5")
        theirs = await _generic_plan(session, naive_sql, f"{sku.id}, {MAIN}, 'available', 5")

    assert CLAIM_INDEX in ours
    assert "Seq Scan" not in ours
    assert '"Node Type": "Sort"' not in ours, "the index hands the codes over in FEFO order"
    assert CLAIM_INDEX not in theirs, "control: a bound status parameter cannot use the partial index"


async def test_sqlite_plans_the_claim_on_the_partial_index(rt: Runtime) -> None:
    if rt.db.is_postgresql:
        pytest.skip("checked with a generic plan above")
    sku = await given_sku_with_codes(rt, 500)
    async with rt.db.transaction() as session:
        await _sell_most_of(session, sku.id)
        sql = str(
            claim_codes_statement(rt.db, sku.id, MAIN, 5).compile(
                dialect=rt.db.engine.dialect, compile_kwargs={"literal_binds": True}
            )
        )
        plan = " ".join(str(row) for row in (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all())
    assert CLAIM_INDEX in plan
    assert "TEMP B-TREE" not in plan, "the index hands the codes over in FEFO order"
