"""An account's balance as it was at an instant, from its postings before it, in the account's normal sign."""

from datetime import timedelta

import pytest

from kaquan import ledger
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.ledger.errors import AccountNotFound


async def test_the_balance_at_an_instant_counts_only_earlier_postings(db: Database) -> None:
    async with db.transaction() as session:
        agent = await ledger.open_account(db, session, "agent:X", currency="CNY", normal="credit")
        bank = await ledger.open_account(db, session, "bank:CNY", currency="CNY", normal="debit")
    start = clock.now()
    for amount, reference in ((1_000, "a"), (250, "b")):
        clock.travel(60)
        async with db.transaction() as session:
            spec = ledger.TransferSpec("topup", (ledger.Leg(bank.id, amount), ledger.Leg(agent.id, -amount)), reference)
            await ledger.post(db, session, spec, actor="test")
    async with db.read() as session:
        assert await ledger.balance_as_of(session, agent.id, start) == 0
        assert await ledger.balance_as_of(session, agent.id, start + timedelta(seconds=90)) == 1_000
        assert await ledger.balance_as_of(session, agent.id, clock.now() + timedelta(seconds=1)) == 1_250
        assert await ledger.balance_as_of(session, bank.id, clock.now() + timedelta(seconds=1)) == 1_250
        with pytest.raises(AccountNotFound):
            await ledger.balance_as_of(session, 999_999, start)
