"""Ledger accounts: opening them, their floors, and their balances (locked or as committed)."""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.money import supported_currencies
from kaquan.kit.shortcache import ShortCache
from kaquan.ledger.errors import AccountConflict, AccountNotFound, FloorAboveBalance, InvalidAccount
from kaquan.ledger.models import LedgerAccount as LedgerAccount

Normal = Literal["debit", "credit"]
ACCOUNTS = cast(Table, LedgerAccount.__table__)

# An account's code and id never change and an account is never deleted (postings refer to it), so an id
# once seen committed holds for the life of the process (kept per database, like every ShortCache).
_COMMITTED_IDS: ShortCache[int] = ShortCache(ttl_s=math.inf)
_OPENED_HERE = "ledger.opened_codes"  # session.info: codes this transaction opened (or tried to)


def _opened_here(session: AsyncSession) -> set[str]:
    opened: set[str] = session.info.setdefault(_OPENED_HERE, set())
    return opened


@dataclass(frozen=True)
class Balance:
    account_id: int
    currency: str
    balance_minor: int
    floor_minor: int | None

    @property
    def spendable_minor(self) -> int | None:
        """How much the balance may still shrink; None when the account has no floor."""
        return None if self.floor_minor is None else self.balance_minor - self.floor_minor


def sign_of(normal: str) -> int:
    """+1 for a debit-normal account, -1 for a credit-normal one: a posting times this grows the balance."""
    return 1 if normal == "debit" else -1


async def open_account(
    db: Database,
    session: AsyncSession,
    code: str,
    *,
    currency: str,
    normal: Normal,
    floor_minor: int | None = None,
) -> LedgerAccount:
    """The account `code`, opened at balance 0 unless it exists; an existing one keeps its floor.

    Opening is idempotent by code; an existing account in another currency or on
    the other normal side is a conflict.
    """
    if not 1 <= len(code) <= 96:
        raise InvalidAccount("an account code of 1 to 96 characters is required", code=code)
    if currency not in supported_currencies():
        raise InvalidAccount(
            f"unsupported currency {currency!r}; one of {', '.join(supported_currencies())}", currency=currency
        )
    if normal not in ("debit", "credit"):
        raise InvalidAccount(f"normal must be 'debit' or 'credit', not {normal!r}", normal=normal)
    if floor_minor is not None and (type(floor_minor) is not int or floor_minor > 0):
        raise InvalidAccount("a new account starts at 0, so its floor must be an integer of 0 or below", code=code)
    _opened_here(session).add(code)  # not committed until this transaction is: its id is not cached from here
    await session.execute(
        db.insert(ACCOUNTS)
        .values(
            code=code,
            currency=currency,
            normal=normal,
            floor_minor=floor_minor,
            balance_minor=0,
            created_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    account = await account_by_code(session, code)
    if account is None:
        raise AssertionError(f"account {code} neither inserted nor found")
    if (account.currency, account.normal) != (currency, normal):
        raise AccountConflict(
            f"account {code} exists as a {account.normal}-normal {account.currency} account",
            code=code,
            currency=account.currency,
            normal=account.normal,
        )
    return account


async def account_by_code(session: AsyncSession, code: str) -> LedgerAccount | None:
    stmt = select(LedgerAccount).where(LedgerAccount.code == code).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def account_ids_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, int]:
    """The ids of those of these accounts that are open, by code (at most one query, however many codes).

    Ids seen committed are kept for the process (`_COMMITTED_IDS`): a sale's hot accounts are looked up
    once, not for every sale. An account this transaction opened is looked up, never kept: were the
    transaction rolled back, its id would name nothing, or on SQLite another account later.
    """
    found: dict[str, int] = {}
    missing: list[str] = []
    for code in sorted(set(codes)):
        known = _COMMITTED_IDS.get(session, code)
        if known is None:
            missing.append(code)
        else:
            found[code] = known
    if not missing:
        return found
    opened = _opened_here(session)
    rows = await session.execute(select(ACCOUNTS.c.code, ACCOUNTS.c.id).where(ACCOUNTS.c.code.in_(missing)))
    for code, account_id in rows:
        found[code] = account_id
        if code not in opened:
            _COMMITTED_IDS.put(session, code, account_id)
    return found


async def set_floor(db: Database, session: AsyncSession, account_id: int, floor_minor: int | None) -> LedgerAccount:
    """Set the lowest balance the account may reach (None: no floor); never above the current balance."""
    if floor_minor is not None and type(floor_minor) is not int:
        raise InvalidAccount("a floor is a whole number of minor units", account_id=account_id)
    held = await locked_balance(db, session, account_id)
    if floor_minor is not None and held.balance_minor < floor_minor:
        raise FloorAboveBalance(
            f"account {account_id}: floor {floor_minor} is above its balance {held.balance_minor}",
            account_id=account_id,
            balance_minor=held.balance_minor,
            floor_minor=floor_minor,
        )
    await session.execute(update(ACCOUNTS).where(ACCOUNTS.c.id == account_id).values(floor_minor=floor_minor))
    stmt = select(LedgerAccount).where(LedgerAccount.id == account_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


def _balance_query(account_id: int) -> Select[Any]:
    return select(ACCOUNTS.c.currency, ACCOUNTS.c.balance_minor, ACCOUNTS.c.floor_minor).where(
        ACCOUNTS.c.id == account_id
    )


async def _balance_of(session: AsyncSession, stmt: Select[Any], account_id: int) -> Balance:
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise AccountNotFound(f"no ledger account with id {account_id}", account_id=account_id)
    return Balance(account_id, row.currency, row.balance_minor, row.floor_minor)


async def locked_balance(db: Database, session: AsyncSession, account_id: int) -> Balance:
    """The account's balance, row-locked until the caller's transaction ends (no other writer can move it)."""
    return await _balance_of(session, db.lock(_balance_query(account_id)), account_id)


async def balance(session: AsyncSession, account_id: int) -> Balance:
    """The account's balance as committed now: for display, or for decisions a guarded debit re-checks.

    Never the only check on what may be spent: it can be spent by someone else a
    moment later (`post_many_locking_last` re-checks at the debit).
    """
    return await _balance_of(session, _balance_query(account_id), account_id)
