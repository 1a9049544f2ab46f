"""`post_many_locking_last(…, unfloored_at_commit=True)`: every sale moves the same few floorless accounts
(a channel's sales, a gateway's receivable), and a sale that has booked but not committed yet must not hold
the next one up. On PostgreSQL those balances move while the transaction commits (a deferred trigger);
accounts with a floor are still guarded at once; the stored balances always equal the postings.
"""

import asyncio

import pytest
from sqlalchemy import func, select
from tests.support.ledger import Book, balances, check, given_book, order_spec, rows, top_up_spec

from kaquan import ledger
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.ledger import Leg, TransferSpec
from kaquan.ledger.models import LedgerBalanceMove

SALES = 40


def sale(book: Book, amount: int, reference: str) -> TransferSpec:
    """A shop sale: the bank debited, sales credited (both without a floor)."""
    return TransferSpec("sale", (Leg(book.bank, amount), Leg(book.sales, -amount)), reference)


async def book_at_commit(db: Database, *specs: TransferSpec) -> None:
    async with db.transaction() as session:
        await ledger.post_many_locking_last(db, session, specs, actor="test", unfloored_at_commit=True)


async def waiting_moves(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count()).select_from(LedgerBalanceMove))).scalar_one())


async def test_concurrent_sales_add_up_exactly_and_leave_no_move_behind(db: Database) -> None:
    book = await given_book(db)

    await asyncio.gather(*(book_at_commit(db, sale(book, 3, f"sale-{n}")) for n in range(SALES)))

    assert await balances(db, book.bank, book.sales) == (3 * SALES, 3 * SALES)
    assert await rows(db) == (SALES, 2 * SALES)
    assert await waiting_moves(db) == 0
    assert (await check(db)).ok


async def test_a_sale_rolled_back_moves_no_balance(db: Database) -> None:
    book = await given_book(db)

    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await ledger.post_many_locking_last(
                db, session, [sale(book, 5, "sale-1")], actor="test", unfloored_at_commit=True
            )
            raise RuntimeError("the sale failed after booking")

    assert await balances(db, book.bank, book.sales) == (0, 0)
    assert await waiting_moves(db) == 0
    assert (await check(db)).ok


async def test_an_account_with_a_floor_is_still_guarded_at_once(db: Database) -> None:
    book = await given_book(db, credit_limit=0)
    await book_at_commit(db, top_up_spec(book, 10, "top-up"))

    with pytest.raises(DomainError) as refused:
        await book_at_commit(db, order_spec(book, 11, "order-1"))

    assert refused.value.code == "insufficient_balance"
    assert await balances(db, book.agent, book.bank, book.sales) == (10, 10, 0)
    assert (await check(db)).ok


async def test_a_sale_booked_and_not_yet_committed_holds_no_other_sale_up(db: Database) -> None:
    """The first sale books, then waits before committing (its server busy elsewhere); the second
    books and commits meanwhile, within the lock timeout. Before the balances moved at commit, the
    second waited on the first's row lock until it committed: here it would time out as `busy`.
    """
    if not db.moves_balances_at_commit:
        pytest.skip("SQLite serializes writers: the second sale waits for the first's commit whatever it books")
    book = await given_book(db)
    booked, second_done = asyncio.Event(), asyncio.Event()

    async def slow_sale() -> None:
        async with db.transaction() as session:
            await ledger.post_many_locking_last(
                db, session, [sale(book, 7, "slow")], actor="test", unfloored_at_commit=True
            )
            booked.set()
            await asyncio.wait_for(second_done.wait(), timeout=10)

    async def quick_sale() -> None:
        await booked.wait()
        await book_at_commit(db, sale(book, 2, "quick"))
        second_done.set()

    await asyncio.gather(slow_sale(), quick_sale())

    assert await balances(db, book.bank, book.sales) == (9, 9)
    assert (await check(db)).ok


async def test_without_moves_at_commit_a_booked_sale_holds_the_next_one_until_it_commits(db: Database) -> None:
    """The control experiment for the test above: booked the old way, the second sale waits on the
    first's row lock and, since the first commits only after the second, gives up as `busy`."""
    if not db.moves_balances_at_commit:
        pytest.skip("SQLite serializes writers: there is no row lock to show")
    book = await given_book(db)
    booked, second_done = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def slow_sale() -> None:
        async with db.transaction() as session:
            await ledger.post_many_locking_last(db, session, [sale(book, 7, "slow")], actor="test")
            booked.set()
            await asyncio.wait_for(second_done.wait(), timeout=10)

    async def quick_sale() -> None:
        await booked.wait()
        try:
            async with db.transaction() as session:
                await ledger.post_many_locking_last(db, session, [sale(book, 2, "quick")], actor="test")
        except DomainError as exc:
            outcome.append(exc.code)
        else:
            outcome.append("ok")
        second_done.set()

    await asyncio.gather(slow_sale(), quick_sale())

    assert outcome == ["busy"]
    assert await balances(db, book.bank, book.sales) == (7, 7)
