"""A small chart of accounts and the moves tests make on it, in as few words as a test needs."""

from dataclasses import dataclass

from sqlalchemy import func, select

from kaquan import ledger
from kaquan.kit.db import Database
from kaquan.ledger import Leg, TransferSpec
from kaquan.ledger.models import LedgerPosting, LedgerTransfer


@dataclass(frozen=True)
class Book:
    """An agent's prepaid deposit (credit-normal liability), the bank (debit-normal asset), sales (revenue)."""

    agent: int
    bank: int
    sales: int
    usd_bank: int
    agent_code: str


async def given_book(db: Database, *, credit_limit: int = 0) -> Book:
    agent_code = "agent:42"
    async with db.transaction() as session:
        agent = await ledger.open_account(
            db, session, agent_code, currency="CNY", normal="credit", floor_minor=-credit_limit
        )
        bank = await ledger.open_account(db, session, "bank:CNY", currency="CNY", normal="debit")
        sales = await ledger.open_account(db, session, "shop:sales:CNY", currency="CNY", normal="credit")
        usd_bank = await ledger.open_account(db, session, "bank:USD", currency="USD", normal="debit")
    return Book(agent.id, bank.id, sales.id, usd_bank.id, agent_code)


def top_up_spec(book: Book, amount: int, reference: str | None = None) -> TransferSpec:
    """The agent pays money in: the bank is debited, the agent's deposit credited."""
    return TransferSpec("top_up", (Leg(book.bank, amount), Leg(book.agent, -amount)), reference, "预存款充值")


def order_spec(book: Book, amount: int, reference: str | None = None) -> TransferSpec:
    """The agent buys: its deposit is debited, sales credited."""
    return TransferSpec("order", (Leg(book.agent, amount), Leg(book.sales, -amount)), reference)


async def post(db: Database, spec: TransferSpec) -> LedgerTransfer:
    async with db.transaction() as session:
        return await ledger.post(db, session, spec, actor="test")


async def balances(db: Database, *account_ids: int) -> tuple[int, ...]:
    async with db.read() as session:
        return tuple([(await ledger.balance(session, account_id)).balance_minor for account_id in account_ids])


async def rows(db: Database) -> tuple[int, int]:
    """How many transfers and postings exist."""
    async with db.read() as session:
        transfers = (await session.execute(select(func.count()).select_from(LedgerTransfer))).scalar_one()
        postings = (await session.execute(select(func.count()).select_from(LedgerPosting))).scalar_one()
    return transfers, postings


async def check(db: Database) -> ledger.LedgerCheck:
    async with db.read() as session:
        return await ledger.check(session)
