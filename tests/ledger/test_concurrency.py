"""Invariant 4 under real concurrency: an agent's deposit never goes below minus its credit limit.

Every transfer below runs in a transaction of its own, all at once. The control
experiment shows, with the row locks switched off, that the race is real.
"""

import asyncio

import pytest
from tests.support.ledger import Book, balances, check, given_book, order_spec, post, rows, top_up_spec

from kaquan import ledger
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.ledger import Leg, TransferSpec

PRICE = 100
BUYERS = 50


async def _order(db: Database, book: Book, n: int) -> str:
    """One agent order in a transaction of its own: "ok" or the refusal's code."""
    try:
        await db.run(lambda session: ledger.post(db, session, order_spec(book, PRICE, f"order-{n}"), actor="agent"))
    except DomainError as exc:
        return exc.code
    return "ok"


async def test_fifty_orders_against_a_deposit_that_affords_twenty_leave_it_exactly_at_the_floor(db: Database) -> None:
    book = await given_book(db, credit_limit=5 * PRICE)
    await post(db, top_up_spec(book, 15 * PRICE))

    outcomes = await asyncio.gather(*(_order(db, book, n) for n in range(BUYERS)))

    assert outcomes.count("ok") == 20
    assert set(outcomes) == {"ok", "insufficient_balance"}
    assert await balances(db, book.agent, book.sales) == (-5 * PRICE, 20 * PRICE)
    assert await rows(db) == (21, 42)
    assert (await check(db)).ok


async def test_transfers_over_the_same_two_accounts_in_opposite_leg_order_never_deadlock(db: Database) -> None:
    """Accounts are locked in ascending id order whatever the order of the legs.

    Each transfer runs once, without `db.run`'s retry: a deadlock (or a lock
    timeout behind one) would surface here as `busy`.
    """
    book = await given_book(db)
    there = TransferSpec("sweep", (Leg(book.bank, 3), Leg(book.sales, -3)))
    back = TransferSpec("sweep", (Leg(book.sales, 2), Leg(book.bank, -2)))

    async def once(spec: TransferSpec) -> str:
        try:
            async with db.transaction() as session:
                await ledger.post(db, session, spec, actor="test")
        except DomainError as exc:
            return exc.code
        return "ok"

    outcomes = await asyncio.gather(*(once(there if n % 2 else back) for n in range(40)))

    assert outcomes == ["ok"] * 40
    assert await balances(db, book.bank, book.sales) == (20, 20)
    assert (await check(db)).ok


async def test_without_the_row_locks_concurrent_debits_lose_updates(db: Database) -> None:
    """The control experiment for the test above it: with `db.unprotected()` each transfer reads the
    balance unlocked and writes back its own computed total, so concurrent debits overwrite each
    other and the stored balance no longer equals the postings.

    PostgreSQL only: SQLite serializes writers on its one write lock (without BEGIN IMMEDIATE a
    racing writer fails with "database is locked" rather than losing an update), so there is no
    lost update to show there.
    """
    if not db.is_postgresql:
        pytest.skip("SQLite serializes writers: there is no lost update to show")
    book = await given_book(db)
    await post(db, top_up_spec(book, BUYERS * PRICE))

    with db.unprotected():
        outcomes = await asyncio.gather(*(_order(db, book, n) for n in range(BUYERS)))

    async with db.read() as session:
        stored = (await ledger.balance(session, book.agent)).balance_minor
        posted = sum(entry.amount_minor for entry in await ledger.entries(session, book.agent, limit=1000))
    assert posted == BUYERS * PRICE - outcomes.count("ok") * PRICE
    assert stored > posted, "the unprotected debits should have overwritten each other"
    problems = (await check(db)).problems
    assert any(problem.startswith("account agent:42 ") for problem in problems), problems


async def _batch_locking_last(db: Database, book: Book, n: int, size: int) -> str:
    """A batch of `size` one-unit orders posted with the locks taken last, in a transaction of its own."""
    specs = [order_spec(book, PRICE, f"batch-{n}-{k}") for k in range(size)]
    try:
        await db.run(lambda session: ledger.post_many_locking_last(db, session, specs, actor="agent"))
    except DomainError as exc:
        return exc.code
    return "ok"


async def test_batches_posted_with_the_locks_taken_last_never_take_the_deposit_below_its_floor(db: Database) -> None:
    """Twenty batches of three orders race for a deposit that affords twenty orders: six batches fit, whole."""
    book = await given_book(db, credit_limit=5 * PRICE)
    await post(db, top_up_spec(book, 15 * PRICE))

    outcomes = await asyncio.gather(*(_batch_locking_last(db, book, n, 3) for n in range(20)))

    assert outcomes.count("ok") == 6
    assert set(outcomes) == {"ok", "insufficient_balance"}
    assert await balances(db, book.agent, book.sales) == (-3 * PRICE, 18 * PRICE)
    assert await rows(db) == (1 + 18, 2 + 36), "a refused batch leaves no transfer and no posting behind"
    assert (await check(db)).ok
