"""The double-entry ledger: balanced transfers, floors, idempotent references, corrections, and its own proof.

Chart used throughout (tests/support/ledger.py): the agent's prepaid deposit is a
credit-normal liability (a top-up credits it, an order debits it), the bank a
debit-normal asset, sales a credit-normal revenue account.
"""

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from tests.support.ledger import Book, balances, check, given_book, order_spec, post, rows, top_up_spec
from tests.support.statement_count import counting

from kaquan import ledger
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError, IdempotencyConflict
from kaquan.ledger import Leg, TransferSpec
from kaquan.ledger.errors import (
    AccountConflict,
    AccountNotFound,
    AlreadyReversed,
    FloorAboveBalance,
    InsufficientFunds,
    InvalidAccount,
    TransferNotFound,
)
from kaquan.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer

# --- balances move in each account's normal sign -------------------------------------------------


async def test_a_top_up_grows_both_the_bank_and_the_agents_deposit(db: Database) -> None:
    book = await given_book(db)

    transfer = await post(db, top_up_spec(book, 10_000, "bank-slip-1"))

    assert await balances(db, book.bank, book.agent, book.sales) == (10_000, 10_000, 0)
    assert (transfer.kind, transfer.reference, transfer.memo, transfer.actor) == (
        "top_up",
        "bank-slip-1",
        "预存款充值",
        "test",
    )
    assert (await check(db)).ok


async def test_an_order_shrinks_the_deposit_and_grows_sales(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 10_000))

    await post(db, order_spec(book, 2_500, "order-1"))

    assert await balances(db, book.bank, book.agent, book.sales) == (10_000, 7_500, 2_500)
    assert await rows(db) == (2, 4)
    assert (await check(db)).ok


async def test_a_transfer_may_balance_in_two_currencies_at_once(db: Database) -> None:
    """A currency exchange: each currency balances on its own."""
    book = await given_book(db)
    async with db.transaction() as session:
        usd_sales = await ledger.open_account(db, session, "shop:sales:USD", currency="USD", normal="credit")
    exchange = TransferSpec(
        "exchange",
        (Leg(book.bank, 700), Leg(book.sales, -700), Leg(book.usd_bank, 100), Leg(usd_sales.id, -100)),
    )

    await post(db, exchange)

    assert await balances(db, book.bank, book.sales, book.usd_bank, usd_sales.id) == (700, 700, 100, 100)
    assert (await check(db)).ok


# --- bad transfers change nothing ----------------------------------------------------------------


def _unbalanced(book: Book) -> TransferSpec:
    return TransferSpec("order", (Leg(book.agent, 100), Leg(book.sales, -99)))


def _zero_leg(book: Book) -> TransferSpec:
    return TransferSpec("order", (Leg(book.agent, 100), Leg(book.sales, -100), Leg(book.bank, 0)))


def _one_leg(book: Book) -> TransferSpec:
    return TransferSpec("order", (Leg(book.agent, 100),))


def _no_legs(book: Book) -> TransferSpec:
    return TransferSpec("order", ())


def _unknown_account(book: Book) -> TransferSpec:
    return TransferSpec("order", (Leg(book.agent, 100), Leg(9_999, -100)))


def _currency_mismatch(book: Book) -> TransferSpec:
    return TransferSpec("order", (Leg(book.agent, 100), Leg(book.usd_bank, -100)))


def _reserved_kind(book: Book) -> TransferSpec:
    return TransferSpec("reversal", (Leg(book.agent, 100), Leg(book.sales, -100)), reference="reversal:1")


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_unbalanced, "unbalanced_transfer"),
        (_zero_leg, "invalid_transfer"),
        (_one_leg, "invalid_transfer"),
        (_no_legs, "invalid_transfer"),
        (_unknown_account, "unknown_account"),
        (_currency_mismatch, "currency_mismatch"),
        (_reserved_kind, "invalid_transfer"),
    ],
    ids=["unbalanced", "zero-leg", "one-leg", "no-legs", "unknown-account", "currency-mismatch", "reserved-kind"],
)
async def test_a_malformed_transfer_is_refused_and_changes_nothing(
    db: Database, make: Callable[[Book], TransferSpec], code: str
) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    before = (await balances(db, book.bank, book.agent, book.sales, book.usd_bank), await rows(db))

    with pytest.raises(DomainError) as refused:
        await post(db, make(book))
    with pytest.raises(DomainError) as refused_in_a_batch:
        async with db.transaction() as session:
            await ledger.post_many(db, session, [order_spec(book, 10), make(book)], actor="test")

    assert refused.value.code == refused_in_a_batch.value.code == code
    assert refused.value.status == 400
    assert (await balances(db, book.bank, book.agent, book.sales, book.usd_bank), await rows(db)) == before


async def test_an_unbalanced_transfer_says_by_how_much(db: Database) -> None:
    book = await given_book(db)
    short_debit = TransferSpec("order", (Leg(book.agent, 97), Leg(book.sales, -100)), "order-9")

    with pytest.raises(DomainError, match="order: debits exceed credits by 1 minor units of CNY") as over:
        await post(db, _unbalanced(book))
    with pytest.raises(DomainError, match="order order-9: credits exceed debits by 3 minor units of CNY") as under:
        await post(db, short_debit)

    assert over.value.details == {"currency": "CNY", "difference_minor": 1}
    assert under.value.details == {"currency": "CNY", "difference_minor": -3}


# --- the floor: minus the credit limit -----------------------------------------------------------


async def test_the_deposit_may_go_exactly_down_to_minus_the_credit_limit_and_not_one_fen_more(db: Database) -> None:
    book = await given_book(db, credit_limit=500)
    await post(db, top_up_spec(book, 1_000))

    with pytest.raises(InsufficientFunds) as too_much:
        await post(db, order_spec(book, 1_501))
    await post(db, order_spec(book, 1_500))
    with pytest.raises(InsufficientFunds) as one_more:
        await post(db, order_spec(book, 1))

    assert (too_much.value.status, too_much.value.code) == (402, "insufficient_balance")
    assert too_much.value.details == {
        "account": "agent:42",
        "balance_minor": 1_000,
        "floor_minor": -500,
        "needed_minor": 1_501,
    }
    assert one_more.value.details["balance_minor"] == -500
    assert await balances(db, book.agent, book.sales) == (-500, 1_500)
    assert await rows(db) == (2, 4)
    async with db.read() as session:
        assert (await ledger.balance(session, book.agent)).spendable_minor == 0
        assert (await ledger.balance(session, book.sales)).spendable_minor is None


async def test_the_database_itself_refuses_a_balance_below_the_floor(db: Database) -> None:
    book = await given_book(db, credit_limit=500)

    with pytest.raises(IntegrityError, match="balance_above_floor"):
        async with db.transaction() as session:
            await session.execute(
                update(LedgerAccount).where(LedgerAccount.id == book.agent).values(balance_minor=-501)
            )


async def test_a_credit_limit_can_be_raised_but_never_set_above_the_balance(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 300))
    await post(db, order_spec(book, 300))

    with pytest.raises(InsufficientFunds):
        await post(db, order_spec(book, 200))
    async with db.transaction() as session:
        raised = await ledger.set_floor(db, session, book.agent, -200)
    await post(db, order_spec(book, 200))
    with pytest.raises(FloorAboveBalance):
        async with db.transaction() as session:
            await ledger.set_floor(db, session, book.agent, -100)
    async with db.transaction() as session:
        unlimited = await ledger.set_floor(db, session, book.sales, None)

    assert raised.floor_minor == -200
    assert unlimited.floor_minor is None
    async with db.read() as session:
        assert await ledger.balance(session, book.agent) == ledger.Balance(book.agent, "CNY", -200, -200)


# --- accounts ------------------------------------------------------------------------------------


async def test_opening_an_account_twice_returns_the_first(db: Database) -> None:
    book = await given_book(db, credit_limit=500)

    async with db.transaction() as session:
        again = await ledger.open_account(db, session, "agent:42", currency="CNY", normal="credit", floor_minor=-9)
        found = await ledger.account_by_code(session, "agent:42")
        missing = await ledger.account_by_code(session, "agent:43")

    assert again.id == book.agent
    assert again.floor_minor == -500
    assert found is not None and found.id == book.agent
    assert missing is None


@pytest.mark.parametrize(
    ("currency", "normal"), [("USD", "credit"), ("CNY", "debit")], ids=["other-currency", "other-side"]
)
async def test_an_existing_code_in_another_currency_or_side_is_a_conflict(
    db: Database, currency: str, normal: ledger.Normal
) -> None:
    await given_book(db)

    with pytest.raises(AccountConflict, match="credit-normal CNY"):
        async with db.transaction() as session:
            await ledger.open_account(db, session, "agent:42", currency=currency, normal=normal)


@pytest.mark.parametrize(
    ("code", "currency", "floor"),
    [("", "CNY", None), ("x" * 97, "CNY", None), ("agent:1", "XXX", None), ("agent:1", "CNY", 1)],
    ids=["empty-code", "long-code", "unknown-currency", "floor-above-zero"],
)
async def test_a_bad_account_is_refused(db: Database, code: str, currency: str, floor: int | None) -> None:
    with pytest.raises(InvalidAccount):
        async with db.transaction() as session:
            await ledger.open_account(db, session, code, currency=currency, normal="credit", floor_minor=floor)


async def test_an_unknown_account_has_no_balance(db: Database) -> None:
    with pytest.raises(AccountNotFound):
        async with db.transaction() as session:
            await ledger.locked_balance(db, session, 404)
    with pytest.raises(AccountNotFound):
        async with db.read() as session:
            await ledger.entries(session, 404)


async def test_a_locked_balance_is_the_balance(db: Database) -> None:
    book = await given_book(db, credit_limit=500)
    await post(db, top_up_spec(book, 1_000))

    async with db.transaction() as session:
        locked = await ledger.locked_balance(db, session, book.agent)

    assert locked == ledger.Balance(book.agent, "CNY", 1_000, -500)
    assert locked.spendable_minor == 1_500


# --- idempotency by (kind, reference) ------------------------------------------------------------


async def test_a_replayed_reference_returns_the_first_transfer_and_moves_money_once(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    first = await post(db, order_spec(book, 400, "order-7"))
    swapped = TransferSpec("order", (Leg(book.sales, -400), Leg(book.agent, 400)), "order-7", memo="retried")

    again = await post(db, order_spec(book, 400, "order-7"))
    in_other_order = await post(db, swapped)

    assert again.id == in_other_order.id == first.id
    assert await balances(db, book.agent, book.sales) == (600, 400)
    assert await rows(db) == (2, 4)


async def test_a_replay_is_answered_even_when_the_money_was_spent_since(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 400))
    first = await post(db, order_spec(book, 400, "order-7"))

    again = await post(db, order_spec(book, 400, "order-7"))

    assert again.id == first.id


async def test_a_reference_reused_for_other_legs_is_a_conflict_and_changes_nothing(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    await post(db, order_spec(book, 400, "order-7"))

    with pytest.raises(IdempotencyConflict) as conflict:
        await post(db, order_spec(book, 500, "order-7"))
    other_kind = await post(db, top_up_spec(book, 500, "order-7"))

    assert conflict.value.status == 409
    assert other_kind.kind == "top_up"
    assert await balances(db, book.agent, book.sales) == (1_100, 400)


# --- post_many: the group-commit path, all or nothing --------------------------------------------


async def test_post_many_posts_every_transfer_in_order(db: Database) -> None:
    book = await given_book(db)
    specs = [top_up_spec(book, 1_000, "slip-1")] + [order_spec(book, 100, f"order-{n}") for n in range(5)]

    async with db.transaction() as session:
        ids = await ledger.post_many(db, session, specs, actor="group-commit")

    assert len(ids) == 6 and ids == sorted(ids)
    async with db.read() as session:
        agent_entries = await ledger.entries(session, book.agent)
    assert [(e.transfer_id, e.reference, e.amount_minor) for e in agent_entries] == [
        (ids[0], "slip-1", 1_000),
        *((ids[n + 1], f"order-{n}", -100) for n in range(5)),
    ]
    assert await balances(db, book.agent, book.sales, book.bank) == (500, 500, 1_000)
    assert (await check(db)).ok


async def test_post_many_checks_floors_transfer_by_transfer_and_posts_nothing_when_one_fails(db: Database) -> None:
    book = await given_book(db, credit_limit=100)
    await post(db, top_up_spec(book, 200))
    before = (await balances(db, book.agent, book.sales), await rows(db))

    with pytest.raises(InsufficientFunds) as refused:
        async with db.transaction() as session:
            await ledger.post_many(
                db, session, [order_spec(book, 250), order_spec(book, 100), top_up_spec(book, 1_000)], actor="test"
            )

    assert refused.value.details["balance_minor"] == -50
    assert refused.value.details["needed_minor"] == 100
    assert (await balances(db, book.agent, book.sales), await rows(db)) == before


async def test_post_many_refuses_a_used_or_repeated_reference(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000, "slip-1"))
    before = await rows(db)

    for batch in (
        [order_spec(book, 10, "order-1"), top_up_spec(book, 1_000, "slip-1")],
        [order_spec(book, 10, "order-1"), order_spec(book, 10, "order-1")],
    ):
        with pytest.raises(IdempotencyConflict):
            async with db.transaction() as session:
                await ledger.post_many(db, session, batch, actor="test")

    assert await rows(db) == before
    async with db.transaction() as session:
        assert await ledger.post_many(db, session, [], actor="test") == []


# --- corrections are new transfers ---------------------------------------------------------------


async def test_a_reversal_is_a_new_transfer_that_undoes_the_first(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    order = await post(db, order_spec(book, 400, "order-7"))

    async with db.transaction() as session:
        reversal = await ledger.reverse(db, session, order.id, actor="finance", memo="order refunded")

    assert (reversal.kind, reversal.reference, reversal.reverses_id, reversal.memo, reversal.actor) == (
        "reversal",
        f"reversal:{order.id}",
        order.id,
        "order refunded",
        "finance",
    )
    assert await balances(db, book.agent, book.sales) == (1_000, 0)
    assert await rows(db) == (3, 6)
    async with db.read() as session:
        assert [e.amount_minor for e in await ledger.entries(session, book.agent)] == [1_000, -400, 400]
    assert (await check(db)).ok


async def test_a_transfer_is_reversed_at_most_once(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    order = await post(db, order_spec(book, 400))
    async with db.transaction() as session:
        first = await ledger.reverse(db, session, order.id, actor="finance", memo="refund")

    with pytest.raises(AlreadyReversed) as again:
        async with db.transaction() as session:
            await ledger.reverse(db, session, order.id, actor="finance", memo="refund again")
    with pytest.raises(TransferNotFound):
        async with db.transaction() as session:
            await ledger.reverse(db, session, 404, actor="finance", memo="no such transfer")

    assert again.value.details == {"transfer_id": order.id, "reversal_id": first.id}
    assert await balances(db, book.agent) == (1_000,)


async def test_a_top_up_already_spent_cannot_be_reversed_below_the_floor(db: Database) -> None:
    book = await given_book(db)
    top_up = await post(db, top_up_spec(book, 1_000))
    await post(db, order_spec(book, 600))

    with pytest.raises(InsufficientFunds):
        async with db.transaction() as session:
            await ledger.reverse(db, session, top_up.id, actor="finance", memo="bounced")

    assert await balances(db, book.agent) == (400,)


# --- reading an account --------------------------------------------------------------------------


async def test_entries_page_by_posting_id_and_filter_by_time(db: Database) -> None:
    book = await given_book(db)
    start = clock.now()
    for n in range(5):
        await post(db, top_up_spec(book, 100 * (n + 1), f"slip-{n}"))
        clock.travel(3600)

    async with db.read() as session:
        first = await ledger.entries(session, book.agent, limit=2)
        second = await ledger.entries(session, book.agent, after_id=first[-1].posting_id, limit=2)
        third = await ledger.entries(session, book.agent, after_id=second[-1].posting_id, limit=2)
        middle = await ledger.entries(
            session, book.agent, since=start + timedelta(minutes=30), until=start + timedelta(hours=3)
        )
        bank = await ledger.entries(session, book.bank)

    assert [e.reference for e in first + second + third] == [f"slip-{n}" for n in range(5)]
    assert [e.amount_minor for e in first + second + third] == [100, 200, 300, 400, 500]
    assert [e.amount_minor for e in bank] == [100, 200, 300, 400, 500]
    assert [e.reference for e in middle] == ["slip-1", "slip-2"]
    assert all(e.kind == "top_up" and e.memo == "预存款充值" for e in first)
    assert first[0].at < first[1].at


async def test_a_page_size_out_of_range_is_refused(db: Database) -> None:
    book = await given_book(db)

    for limit in (0, ledger.MAX_PAGE + 1):
        with pytest.raises(DomainError, match="limit must be between"):
            async with db.read() as session:
                await ledger.entries(session, book.agent, limit=limit)


# --- the ledger proves itself --------------------------------------------------------------------


async def test_check_passes_a_sound_ledger_and_names_a_corrupted_balance(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1_000))
    await post(db, order_spec(book, 250))

    sound = await check(db)
    async with db.transaction() as session:
        await session.execute(update(LedgerAccount).where(LedgerAccount.id == book.agent).values(balance_minor=800))
    corrupted = await check(db)

    assert sound.ok and sound.problems == []
    assert (sound.transfers, sound.postings) == (2, 4)
    assert not corrupted.ok
    assert corrupted.problems == [f"account agent:42 (id {book.agent}): stored balance ¥8.00, its postings say ¥7.50"]


async def test_check_floors_replays_postings_and_names_an_account_that_ever_went_below_its_floor(db: Database) -> None:
    book = await given_book(db, credit_limit=100)
    await post(db, top_up_spec(book, 500))
    await post(db, order_spec(book, 600))  # down to -100: exactly the credit limit
    async with db.read() as session:
        assert await ledger.check_floors(session, [book.agent, book.bank]) == []
    async with db.transaction() as session:  # an order the floor should have refused, written past the service
        transfer = LedgerTransfer(kind="order", memo="", actor="test", at=clock.now())
        session.add(transfer)
        await session.flush()
        for account, amount in ((book.agent, 1), (book.sales, -1)):
            session.add(
                LedgerPosting(
                    transfer_id=transfer.id, account_id=account, amount_minor=amount, currency="CNY", at=clock.now()
                )
            )

    async with db.read() as session:
        problems = await ledger.check_floors(session, [book.agent, book.sales])

    assert problems == [f"account agent:42 (id {book.agent}): balance reached -101, below its floor -100"]


async def test_check_names_a_transfer_that_does_not_sum_to_zero(db: Database) -> None:
    book = await given_book(db)
    top_up = await post(db, top_up_spec(book, 1_000))
    async with db.transaction() as session:
        await session.execute(
            insert(LedgerPosting).values(
                transfer_id=top_up.id, account_id=book.sales, amount_minor=-5, currency="CNY", at=clock.now()
            )
        )

    problems = (await check(db)).problems

    assert f"transfer {top_up.id}: its CNY postings sum to -¥0.05, not 0" in problems
    assert "all CNY postings together sum to -¥0.05, not 0" in problems
    assert f"account shop:sales:CNY (id {book.sales}): stored balance ¥0.00, its postings say ¥0.05" in problems


async def test_check_names_a_transfer_without_postings_and_a_posting_in_a_foreign_currency(db: Database) -> None:
    book = await given_book(db)
    async with db.transaction() as session:
        in_dollars = LedgerTransfer(kind="top_up", memo="", actor="test", at=clock.now())
        session.add(in_dollars)
        await session.flush()
        await session.execute(
            insert(LedgerPosting),
            [
                {
                    "transfer_id": in_dollars.id,
                    "account_id": book.bank,
                    "amount_minor": a,
                    "currency": "USD",
                    "at": clock.now(),
                }
                for a in (100, -100)
            ],
        )
        stray = LedgerTransfer(kind="top_up", memo="", actor="test", at=clock.now())
        session.add(stray)

    problems = (await check(db)).problems

    assert f"transfer {stray.id} has no postings" in problems
    assert "account bank:CNY: 2 posting(s) in USD, not the account's currency" in problems


async def test_posting_with_the_locks_taken_last_moves_each_balance_once_by_the_batch_total(db: Database) -> None:
    book = await given_book(db)
    await post(db, top_up_spec(book, 1000))

    async with db.transaction() as session:
        ids = await ledger.post_many_locking_last(
            db, session, [order_spec(book, 300, "o-1"), order_spec(book, 200, "o-2")], actor="agent"
        )

    assert len(ids) == 2 and ids[0] < ids[1]
    assert await balances(db, book.agent, book.sales) == (500, 500)
    assert (await check(db)).ok


async def test_posting_with_the_locks_taken_last_refuses_a_batch_the_floor_cannot_cover(db: Database) -> None:
    """The guard sees the balance as it is at the debit: the whole batch is refused and nothing changes."""
    book = await given_book(db, credit_limit=100)
    await post(db, top_up_spec(book, 500))

    with pytest.raises(InsufficientFunds) as refused:
        async with db.transaction() as session:
            await ledger.post_many_locking_last(
                db, session, [order_spec(book, 400, "o-1"), order_spec(book, 201, "o-2")], actor="agent"
            )

    assert refused.value.code == "insufficient_balance"
    assert refused.value.details["balance_minor"] == 500
    assert await balances(db, book.agent, book.sales) == (500, 0)
    assert await rows(db) == (1, 2)


# --- account ids kept once committed ------------------------------------------------------------------


async def test_an_accounts_id_seen_committed_is_looked_up_once(db: Database) -> None:
    async with db.transaction() as session:
        opened = await ledger.open_account(db, session, "sales:kept:CNY", currency="CNY", normal="credit")
    async with db.transaction() as session:
        assert await ledger.account_ids_by_code(session, ["sales:kept:CNY"]) == {"sales:kept:CNY": opened.id}

    with counting(db) as count:
        async with db.transaction() as session:
            assert await ledger.account_ids_by_code(session, ["sales:kept:CNY"]) == {"sales:kept:CNY": opened.id}

    assert count.statements == 0, count.explain()


class OpenedThenRolledBack(Exception):
    """Undoes the transaction that opened the account."""


async def test_an_account_opened_by_a_transaction_that_rolled_back_is_not_remembered(db: Database) -> None:
    with pytest.raises(OpenedThenRolledBack):
        async with db.transaction() as session:
            await ledger.open_account(db, session, "sales:undone:CNY", currency="CNY", normal="credit")
            assert set(await ledger.account_ids_by_code(session, ["sales:undone:CNY"])) == {"sales:undone:CNY"}
            raise OpenedThenRolledBack

    async with db.transaction() as session:
        assert await ledger.account_ids_by_code(session, ["sales:undone:CNY"]) == {}
        other = await ledger.open_account(db, session, "sales:other:CNY", currency="CNY", normal="credit")
        again = await ledger.open_account(db, session, "sales:undone:CNY", currency="CNY", normal="credit")
    async with db.transaction() as session:
        assert await ledger.account_ids_by_code(session, ["sales:undone:CNY", "sales:other:CNY"]) == {
            "sales:undone:CNY": again.id,
            "sales:other:CNY": other.id,
        }
