"""What one buyer of the shop asks of the database, as a budget that fails when the sale path grows.

The buyer of `kaquan bench shop`: places an order (`POST /api/orders`, screened by risk control), the dev
gateway sends its signed payment notification (`POST /payments/dev/notify`, the codes are delivered) and
the buyer looks the order up and sees its code (`POST /api/orders/lookup`). Counted for a buyer after the
first two, as in a storm: the first buyer of a process fills its short-lived catalog cache and opens the
sale's ledger accounts, the second sees them committed and keeps their ids.

Lowering a figure here is the point of issue 16; raising one needs a reason written in docs/shop.md.
"""

import secrets
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import literal, select
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes, stock_of
from tests.support.http import Caller, some_ip
from tests.support.statement_count import StatementCount, counting

from kaquan.kit import shortcache
from kaquan.kit.db import Database, insert_rows
from kaquan.ledger.models import LedgerBalanceMove
from kaquan.runtime import Runtime

UNIT_COST_MINOR = 600  # a batch with a cost, so each delivery books its cost of goods as the bench's does

# Per buyer: (statements, transactions), by backend; each counts the risk counters' write (one statement in a
# transaction of its own: the tests' risk control counts in the database, and in a storm that once-a-second
# write is shared by every buyer of the second).
BUDGET = {"sqlite": (34, 6), "postgresql": (30, 5)}


def backend(db: Database) -> str:
    return "postgresql" if db.is_postgresql else "sqlite"


async def a_buyer(rt: Runtime, caller_at: Caller, sku: GivenSku) -> str:
    """One buyer's whole purchase, as the bench's buyer makes it; returns the code it saw."""
    async with caller_at(some_ip()) as http:
        placed = await http.post(
            "/api/orders",
            json={"sku": sku.code, "quantity": 1},
            headers={"Idempotency-Key": secrets.token_hex(8), "X-Client-Token": secrets.token_hex(16)},
        )
        assert placed.status_code == 201, placed.text
        order: dict[str, Any] = placed.json()
        token = str(order["pay_url"]).rsplit("/", 1)[1]
        headers, body = rt.dev_gateway.notification(
            token, order["total_minor"], order["currency"], secrets.token_hex(6)
        )
        paid = await http.post("/payments/dev/notify", content=body, headers=headers)
        assert paid.status_code == 200, paid.text
        seen = await http.post("/api/orders/lookup", json={"number": order["number"], "secret": order["lookup_secret"]})
        assert seen.status_code == 200, seen.text
        [code] = seen.json()["codes"]
        return str(code["secret"])


async def counted_buyer(rt: Runtime, caller_at: Caller, sku: GivenSku) -> tuple[str, StatementCount]:
    with counting(rt.db) as count:
        code = await a_buyer(rt, caller_at, sku)
        # The decision's row and, without Redis, the risk counters' hits, written behind the request (by a
        # timer, once a second), are the buyer's too: written here, so that the count never hangs on the timer.
        await rt.risk.flush()
    return code, count


async def test_a_buyer_of_the_shop_costs_at_most_its_budget_of_statements_and_transactions(
    rt: Runtime, caller_at: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The catalog's 2-second cache holds for the whole test, as it does between buyers of a storm, however
    # slowly a busy machine runs the test's three buyers.
    monkeypatch.setattr(shortcache, "time", SimpleNamespace(monotonic=lambda: 0.0))
    sku = await given_sku(rt)
    codes = random_codes(4)
    await given_codes(rt, sku, codes, unit_cost_minor=UNIT_COST_MINOR)
    earlier = [await a_buyer(rt, caller_at, sku) for _ in range(2)]
    await rt.risk.flush()

    third, count = await counted_buyer(rt, caller_at, sku)

    statements, transactions = BUDGET[backend(rt.db)]
    assert count.statements <= statements and count.transactions <= transactions, count.explain()
    assert {*earlier, third} <= set(codes) and len({*earlier, third}) == 3
    assert (await stock_of(rt, sku)).sold == 3


async def test_the_count_sees_every_statement_and_transaction(rt: Runtime) -> None:
    with counting(rt.db) as count:
        async with rt.db.transaction() as session:
            await session.execute(select_one())
            await session.execute(select_one())
        async with rt.db.read() as session:
            await session.execute(select_one())

    assert (count.statements, count.transactions) == (3, 2), count.explain()


async def test_a_single_statement_read_is_a_transaction_on_sqlite_only(rt: Runtime) -> None:
    """PostgreSQL runs it in autocommit: the statement is sent without a BEGIN before it or a COMMIT after."""
    with counting(rt.db) as count:
        async with rt.db.read(single_statement=True) as session:
            await session.execute(select_one())

    assert (count.statements, count.transactions) == (1, 0 if rt.db.is_postgresql else 1), count.explain()


async def test_a_copy_counts_as_one_statement(rt: Runtime) -> None:
    """PostgreSQL's COPY goes to the driver, around SQLAlchemy: the count sees it all the same."""
    rows = [{"account_id": 1, "delta_minor": 5}, {"account_id": 2, "delta_minor": -5}]
    with counting(rt.db) as count, pytest.raises(RolledBack):
        async with rt.db.transaction() as session:
            await insert_rows(session, LedgerBalanceMove.__table__, rows)  # type: ignore[arg-type]
            raise RolledBack

    assert (count.statements, count.transactions) == (1, 1), count.explain()


class RolledBack(Exception):
    """Leaves the test's rows unwritten."""


def select_one() -> Any:
    return select(literal(1))
