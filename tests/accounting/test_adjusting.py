"""Adjustments: a reconciliation difference settled on the ledger, balanced, once."""

import pytest
from tests.support.accounting import balances, ledger_problems, transfers

from kaquan import accounting
from kaquan.accounting.errors import InvalidBooking
from kaquan.kit.db import Database
from kaquan.kit.errors import IdempotencyConflict

RECEIVABLE, FEES = "receivable:gateway:wechatpay:CNY", "fees:gateway:wechatpay:CNY"
SUSPENSE, WRITEOFF = "suspense:gateway:wechatpay:CNY", "writeoff:gateway:wechatpay:CNY"


async def adjust(db: Database, reference: str, receivable: int, fee: int, counter: str = "suspense") -> str | None:
    async with db.transaction() as session:
        return await accounting.book_adjustment(
            db,
            session,
            gateway="wechatpay",
            currency="CNY",
            reference=reference,
            receivable_minor=receivable,
            fee_minor=fee,
            counter=counter,  # type: ignore[arg-type]
            memo="test",
        )


async def test_an_unknown_receipt_goes_to_suspense_and_balances(db: Database) -> None:
    assert await adjust(db, "r:1", 4970, 30) == "adjustment:r:1"

    assert await balances(db, RECEIVABLE, FEES, SUSPENSE) == {RECEIVABLE: 4970, FEES: 30, SUSPENSE: 5000}
    assert await ledger_problems(db) == []


async def test_a_fee_difference_needs_no_counter_account(db: Database) -> None:
    await adjust(db, "r:2", -2, 2)

    assert await balances(db, RECEIVABLE, FEES, SUSPENSE) == {RECEIVABLE: -2, FEES: 2, SUSPENSE: 0}
    [posted] = await transfers(db, "reconciliation")
    assert len(posted.legs) == 2


async def test_a_write_off_is_an_expense(db: Database) -> None:
    await adjust(db, "r:3", -1978, -12, counter="writeoff")

    assert await balances(db, RECEIVABLE, FEES, WRITEOFF) == {RECEIVABLE: -1978, FEES: -12, WRITEOFF: 1990}


async def test_the_same_adjustment_twice_posts_once_and_other_amounts_are_refused(db: Database) -> None:
    await adjust(db, "r:4", 100, 0)
    await adjust(db, "r:4", 100, 0)

    assert len(await transfers(db, "reconciliation")) == 1
    with pytest.raises(IdempotencyConflict):
        await adjust(db, "r:4", 101, 0)


async def test_nothing_to_move_posts_nothing(db: Database) -> None:
    assert await adjust(db, "r:5", 0, 0) is None
    assert await transfers(db, "reconciliation") == []
    with pytest.raises(InvalidBooking):
        await adjust(db, "", 1, 0)
