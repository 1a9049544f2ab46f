"""Reading the ledger: an account's entries, and the checks that prove the books balance."""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.errors import BadInput
from kaquan.kit.money import display
from kaquan.ledger.accounts import ACCOUNTS, sign_of
from kaquan.ledger.errors import AccountNotFound
from kaquan.ledger.posting import POSTINGS, TRANSFERS

MAX_PAGE = 1000


@dataclass(frozen=True)
class Entry:
    """One posting as its account sees it: `amount_minor` > 0 grows the account's balance."""

    posting_id: int
    transfer_id: int
    kind: str
    reference: str | None
    memo: str
    at: datetime
    amount_minor: int


@dataclass(frozen=True)
class LedgerCheck:
    transfers: int
    postings: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def entries(
    session: AsyncSession,
    account_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> list[Entry]:
    """An account's postings, oldest first, in [since, until) (of these transfer kinds only, when given);
    page on with `after_id` = the last posting id."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}", limit=limit)
    normal = (await session.execute(select(ACCOUNTS.c.normal).where(ACCOUNTS.c.id == account_id))).scalar_one_or_none()
    if normal is None:
        raise AccountNotFound(f"no ledger account with id {account_id}", account_id=account_id)
    posting, transfer = POSTINGS.c, TRANSFERS.c
    stmt = (
        select(
            posting.id,
            posting.transfer_id,
            transfer.kind,
            transfer.reference,
            transfer.memo,
            posting.at,
            posting.amount_minor,
        )
        .join_from(POSTINGS, TRANSFERS, transfer.id == posting.transfer_id)
        .where(posting.account_id == account_id)
        .order_by(posting.id)
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(posting.at >= since)
    if until is not None:
        stmt = stmt.where(posting.at < until)
    if after_id is not None:
        stmt = stmt.where(posting.id > after_id)
    if kinds is not None:
        stmt = stmt.where(transfer.kind.in_(sorted(set(kinds))))
    sign = sign_of(normal)
    return [
        Entry(row.id, row.transfer_id, row.kind, row.reference, row.memo, row.at, sign * row.amount_minor)
        for row in await session.execute(stmt)
    ]


async def balance_as_of(session: AsyncSession, account_id: int, at: datetime) -> int:
    """The account's balance (in its normal sign) from its postings before `at`: what it was at that instant."""
    normal = (await session.execute(select(ACCOUNTS.c.normal).where(ACCOUNTS.c.id == account_id))).scalar_one_or_none()
    if normal is None:
        raise AccountNotFound(f"no ledger account with id {account_id}", account_id=account_id)
    total = await session.execute(
        select(func.coalesce(func.sum(POSTINGS.c.amount_minor), 0)).where(
            POSTINGS.c.account_id == account_id, POSTINGS.c.at < at
        )
    )
    return sign_of(normal) * int(total.scalar_one())


async def check(session: AsyncSession) -> LedgerCheck:
    """Prove the ledger balances: per transfer, overall, and each account's stored balance against its postings."""
    posting, transfer, account = POSTINGS.c, TRANSFERS.c, ACCOUNTS.c
    total = func.sum(posting.amount_minor)
    problems: list[str] = []
    unbalanced = await session.execute(
        select(posting.transfer_id, posting.currency, total)
        .group_by(posting.transfer_id, posting.currency)
        .having(total != 0)
        .order_by(posting.transfer_id, posting.currency)
    )
    problems += [
        f"transfer {tid}: its {cur} postings sum to {display(int(s), cur)}, not 0" for tid, cur, s in unbalanced
    ]
    empty = await session.execute(
        select(transfer.id).where(~exists().where(posting.transfer_id == transfer.id)).order_by(transfer.id)
    )
    problems += [f"transfer {tid} has no postings" for tid in empty.scalars()]
    overall = await session.execute(
        select(posting.currency, total).group_by(posting.currency).having(total != 0).order_by(posting.currency)
    )
    problems += [f"all {cur} postings together sum to {display(int(s), cur)}, not 0" for cur, s in overall]
    sums = select(posting.account_id, total.label("total")).group_by(posting.account_id).subquery()
    stored = await session.execute(
        select(account.id, account.code, account.currency, account.normal, account.balance_minor, sums.c.total)
        .outerjoin_from(ACCOUNTS, sums, sums.c.account_id == account.id)
        .order_by(account.id)
    )
    for account_id, code, currency, normal, balance_minor, summed in stored:
        expected = sign_of(normal) * int(summed or 0)
        if balance_minor != expected:
            problems.append(
                f"account {code} (id {account_id}): stored balance {display(balance_minor, currency)}, "
                f"its postings say {display(expected, currency)}"
            )
    foreign = await session.execute(
        select(account.code, posting.currency, func.count())
        .join_from(POSTINGS, ACCOUNTS, account.id == posting.account_id)
        .where(posting.currency != account.currency)
        .group_by(account.code, posting.currency)
        .order_by(account.code, posting.currency)
    )
    problems += [f"account {code}: {n} posting(s) in {cur}, not the account's currency" for code, cur, n in foreign]
    transfers = (await session.execute(select(func.count()).select_from(TRANSFERS))).scalar_one()
    postings = (await session.execute(select(func.count()).select_from(POSTINGS))).scalar_one()
    return LedgerCheck(int(transfers), int(postings), problems)


async def check_floors(session: AsyncSession, account_ids: Iterable[int]) -> list[str]:
    """Replay each account's postings in id order: name every account whose running balance ever went
    below its floor (after the fact; the floor is enforced as transfers are posted)."""
    ids = sorted(set(account_ids))
    accounts = {
        row.id: row
        for row in await session.execute(
            select(ACCOUNTS.c.id, ACCOUNTS.c.code, ACCOUNTS.c.normal, ACCOUNTS.c.floor_minor).where(
                ACCOUNTS.c.id.in_(ids)
            )
        )
    }
    postings = await session.execute(
        select(POSTINGS.c.account_id, POSTINGS.c.amount_minor)
        .where(POSTINGS.c.account_id.in_(ids))
        .order_by(POSTINGS.c.id)
    )
    running: Counter[int] = Counter()
    crossed: dict[int, int] = {}
    for account_id, amount in postings:
        account = accounts[account_id]
        running[account_id] += sign_of(account.normal) * amount
        floor = account.floor_minor
        if floor is not None and running[account_id] < floor and account_id not in crossed:
            crossed[account_id] = running[account_id]
    return [
        f"account {accounts[i].code} (id {i}): balance reached {low}, below its floor {accounts[i].floor_minor}"
        for i, low in sorted(crossed.items())
    ]
