"""`kaquan ledger`, driven as finance drives it: prove the ledger balances, read an account's entries."""

from datetime import timedelta

from sqlalchemy import update
from tests.support.cli import Kaquan, one_line
from tests.support.loops import in_own_loop

from kaquan import ledger
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.ledger import Leg, TransferSpec
from kaquan.ledger.models import LedgerAccount


def given_agent_with_orders(kaquan: Kaquan) -> None:
    """agent:7 tops up CNY 100.00 and buys twice; its credit limit is CNY 50.00."""
    kaquan.ok("ledger", "check")  # the first command migrates and creates the runtime's keys

    async def work() -> None:
        db = Database(kaquan.database_url)
        try:
            async with db.transaction() as session:
                agent = await ledger.open_account(
                    db, session, "agent:7", currency="CNY", normal="credit", floor_minor=-5_000
                )
                bank = await ledger.open_account(db, session, "bank:CNY", currency="CNY", normal="debit")
                sales = await ledger.open_account(db, session, "shop:sales:CNY", currency="CNY", normal="credit")
                moves = [
                    TransferSpec("top_up", (Leg(bank.id, 10_000), Leg(agent.id, -10_000)), "slip-1", "[wire] 预存款"),
                    TransferSpec("order", (Leg(agent.id, 1_990), Leg(sales.id, -1_990)), "2611250001"),
                    TransferSpec("order", (Leg(agent.id, 2_500), Leg(sales.id, -2_500)), "2611250002"),
                ]
                for spec in moves:
                    await ledger.post(db, session, spec, actor="test")
        finally:
            await db.dispose()

    in_own_loop(work)


def corrupt_balance(kaquan: Kaquan, code: str, balance_minor: int) -> None:
    async def work() -> None:
        db = Database(kaquan.database_url)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(
                    update(LedgerAccount).where(LedgerAccount.code == code).values(balance_minor=balance_minor)
                )
        finally:
            await db.dispose()

    in_own_loop(work)


def test_check_says_the_ledger_balances_and_names_a_corrupted_account(kaquan: Kaquan) -> None:
    given_agent_with_orders(kaquan)

    assert "ledger balanced: 3 transfers, 6 postings" in kaquan.ok("ledger", "check")

    corrupt_balance(kaquan, "agent:7", 9_999)
    refused = one_line(kaquan.refused("ledger", "check"))
    assert "ledger out of balance: 1 problem(s)" in refused
    assert "account agent:7 (id 1): stored balance ¥99.99, its postings say ¥55.10" in refused


def test_an_empty_ledger_balances(kaquan: Kaquan) -> None:
    assert "ledger balanced: 0 transfers, 0 postings" in kaquan.ok("ledger", "check")


def test_entries_lists_an_account_oldest_first_in_its_own_sign(kaquan: Kaquan) -> None:
    given_agent_with_orders(kaquan)
    an_hour_ago = (clock.now() - timedelta(hours=1)).isoformat()
    in_a_minute = (clock.now() + timedelta(minutes=1)).isoformat()

    listed = kaquan.ok("ledger", "entries", "agent:7")
    two = kaquan.ok("ledger", "entries", "agent:7", "--limit", "2")
    recent = kaquan.ok("ledger", "entries", "agent:7", "--since", an_hour_ago, "--until", in_a_minute)
    none_yet = kaquan.ok("ledger", "entries", "agent:7", "--since", in_a_minute)

    rows = [line for line in listed.splitlines() if "slip-1" in line or "26112500" in line]
    assert len(rows) == 3
    assert "top_up" in rows[0] and "slip-1" in rows[0] and "¥100.00" in rows[0] and "[wire] 预存款" in rows[0]
    assert "order" in rows[1] and "2611250001" in rows[1] and "-¥19.90" in rows[1]
    assert "order" in rows[2] and "2611250002" in rows[2] and "-¥25.00" in rows[2]
    assert "3 entries; balance ¥55.10 (floor -¥50.00)" in listed
    assert "2 entries" in two and "2611250002" not in two
    assert "3 entries" in recent
    assert "0 entries" in none_yet


def test_entries_of_an_unknown_account_or_with_a_bad_time_are_refused(kaquan: Kaquan) -> None:
    given_agent_with_orders(kaquan)

    assert "account_not_found" in kaquan.refused("ledger", "entries", "agent:8")
    assert kaquan("ledger", "entries", "agent:7", "--since", "yesterday").exit_code == 2
    assert kaquan("ledger", "entries", "agent:7", "--until", "2026-11-25T08:00:00").exit_code == 2
    assert kaquan("ledger", "entries", "agent:7", "--limit", "0").exit_code == 2


def test_check_names_a_refund_on_the_ledger_that_no_payment_completed(kaquan: Kaquan) -> None:
    kaquan.ok("ledger", "check")

    async def work() -> None:
        db = Database(kaquan.database_url)
        try:
            async with db.transaction() as session:
                sales = await ledger.open_account(db, session, "sales:shop:CNY", currency="CNY", normal="credit")
                receivable = await ledger.open_account(
                    db, session, "receivable:gateway:alipay:CNY", currency="CNY", normal="debit"
                )
                spec = TransferSpec("payment_refund", (Leg(sales.id, 500), Leg(receivable.id, -500)), "refund:R-9")
                await ledger.post(db, session, spec, actor="test")
        finally:
            await db.dispose()

    in_own_loop(work)
    refused = one_line(kaquan.refused("ledger", "check"))

    assert "books disagree with orders and payments: 2 problem(s)" in refused
    assert "ledger refund refund:R-9 (transfer 1, '') : no completed refund R-9".replace(" :", ":") in refused
    assert "CNY sales of channel shop: -¥5.00 on the ledger, ¥0.00 by the payments and orders" in refused
    assert "CNY 5.00" not in refused and "ledger out of balance" not in refused


def test_check_says_the_books_agree_when_nothing_was_sold(kaquan: Kaquan) -> None:
    assert "books agree with orders and payments: 0 payment(s), 0 refund(s)" in kaquan.ok("ledger", "check")
