"""The double-entry ledger: accounts, balanced transfers, and balances that never fall below their floor.

Every money movement is a transfer whose legs sum to zero in each currency.
Legs are signed debit-positive; an account's balance is kept in its normal
sign, so a credit-normal account (an agent's prepaid deposit, a liability)
grows with credits. Transfers and postings are only ever inserted: this module
has no function that updates or deletes them, and a correction is a new
transfer (`reverse`).

Concurrency: a write locks every account it touches in ascending id order
(`FOR UPDATE` on PostgreSQL; SQLite writers hold the database's write lock),
reads their balances, checks floors, then writes each changed account's new
balance with one UPDATE. Because every writer locks in the same order, two
transfers over the same accounts wait for each other and never deadlock. The
`balance_above_floor` CHECK constraint is the database's own backstop.
A caller that locks accounts itself first (`locked_balance`) must take those
locks in ascending id order as well. For one very busy account there is
`post_many_locking_last`: everything is inserted first and each balance moves
by one guarded UPDATE at the end, so the row is locked only until the commit.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database, insert_rows
from kaquan.kit.errors import BadInput, IdempotencyConflict
from kaquan.kit.money import CurrencyMismatch, supported_currencies
from kaquan.ledger.errors import (
    AccountConflict,
    AccountNotFound,
    AlreadyReversed,
    FloorAboveBalance,
    InsufficientFunds,
    InvalidAccount,
    InvalidTransfer,
    TransferNotFound,
    UnbalancedTransfer,
    UnknownAccount,
)
from kaquan.ledger.models import LedgerAccount, LedgerPosting, LedgerTransfer

Normal = Literal["debit", "credit"]
REVERSAL = "reversal"
MAX_PAGE = 1000
_ACCOUNTS = cast(Table, LedgerAccount.__table__)
_TRANSFERS = cast(Table, LedgerTransfer.__table__)
_POSTINGS = cast(Table, LedgerPosting.__table__)


@dataclass(frozen=True)
class Leg:
    account_id: int
    debit_minor: int  # signed: positive = debit, negative = credit


@dataclass(frozen=True)
class TransferSpec:
    kind: str
    legs: tuple[Leg, ...]
    reference: str | None = None  # idempotency key within `kind`
    memo: str = ""


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


@dataclass
class _Held:
    """An account as read under its lock, with its balance as the transfers being posted leave it."""

    id: int
    code: str
    currency: str
    sign: int  # +1 debit-normal, -1 credit-normal
    floor_minor: int | None
    read_minor: int
    balance_minor: int


def _sign(normal: str) -> int:
    return 1 if normal == "debit" else -1


# --- accounts -----------------------------------------------------------------------------------


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
    await session.execute(
        db.insert(_ACCOUNTS)
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
    await session.execute(update(_ACCOUNTS).where(_ACCOUNTS.c.id == account_id).values(floor_minor=floor_minor))
    stmt = select(LedgerAccount).where(LedgerAccount.id == account_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


def _balance_query(account_id: int) -> Select[Any]:
    return select(_ACCOUNTS.c.currency, _ACCOUNTS.c.balance_minor, _ACCOUNTS.c.floor_minor).where(
        _ACCOUNTS.c.id == account_id
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


# --- posting ------------------------------------------------------------------------------------


async def post(db: Database, session: AsyncSession, spec: TransferSpec, *, actor: str) -> LedgerTransfer:
    """Post one balanced transfer, or return the transfer already posted under (kind, reference).

    A replay must carry the same legs (in any order); other legs under a used
    reference are an `IdempotencyConflict`. The memo is not compared.
    """
    _refuse_reserved_kind(spec)
    transfer, _ = await _post_one(db, session, spec, actor=actor, reverses_id=None)
    return transfer


async def post_many(db: Database, session: AsyncSession, specs: Sequence[TransferSpec], *, actor: str) -> list[int]:
    """Post many transfers at once, all or none; returns their ids in the order given.

    The group-commit path: one locking SELECT, one bulk INSERT per table and one
    UPDATE per changed account, whatever the number of transfers. Floors are
    checked transfer by transfer in the order given. A reference used before (or
    twice in `specs`) is an `IdempotencyConflict`: there is no replay here. A
    reference used before is found by the unique index as the transfers are
    inserted (not by a look-up first: that query costs more than the whole batch
    while a growing table's statistics lag), and the caller's transaction must then
    roll back.
    """
    if not specs:
        return []
    for spec in specs:
        _refuse_reserved_kind(spec)
        _check_shape(spec, actor)
    keys = [(spec.kind, spec.reference) for spec in specs if spec.reference is not None]
    _refuse_repeated_references(keys)
    accounts = await _lock_accounts(db, session, (leg.account_id for spec in specs for leg in spec.legs))
    for spec in specs:
        _check_legs(spec, accounts)
    for spec in specs:
        _apply(spec, accounts)
    at = clock.now()
    ids = await _insert_transfers(session, specs, actor, at)
    await _write(session, accounts, list(zip(ids, specs, strict=True)), at)
    return ids


async def _insert_transfers(
    session: AsyncSession, specs: Sequence[TransferSpec], actor: str, at: datetime
) -> list[int]:
    try:
        inserted = await session.execute(
            insert(_TRANSFERS).returning(_TRANSFERS.c.id, sort_by_parameter_order=True),
            [_transfer_row(spec, actor, at, reverses_id=None) for spec in specs],
        )
    except IntegrityError as exc:  # a concurrent transaction committed one of these references first
        raise IdempotencyConflict("a reference of this batch was used by a concurrent transfer") from exc
    return list(inserted.scalars())


async def post_many_locking_last(
    db: Database, session: AsyncSession, specs: Sequence[TransferSpec], *, actor: str
) -> list[int]:
    """Post many transfers like `post_many`, but lock the accounts only at the very end.

    For hot accounts (one busy agent's deposit): the transfers and postings are
    inserted first, unlocked, then each account's balance moves by one guarded
    UPDATE (`balance + delta >= floor`) in ascending id order, so the row locks
    are held only from that UPDATE to the commit and concurrent batches of the
    same account overlap almost entirely. A guard that finds the floor would be
    crossed raises `InsufficientFunds`: nothing was moved for that account, and
    the caller's transaction must roll back (its decisions were made on a
    balance that has been spent since).
    """
    if not specs:
        return []
    for spec in specs:
        _refuse_reserved_kind(spec)
        _check_shape(spec, actor)
    _refuse_repeated_references([(spec.kind, spec.reference) for spec in specs if spec.reference is not None])
    accounts = await _read_accounts(session, (leg.account_id for spec in specs for leg in spec.legs), lock=None)
    deltas: dict[int, int] = defaultdict(int)
    for spec in specs:
        _check_legs(spec, accounts)
        for leg in spec.legs:
            deltas[leg.account_id] += accounts[leg.account_id].sign * leg.debit_minor
    at = clock.now()
    ids = await _insert_transfers(session, specs, actor, at)
    await _insert_postings(session, accounts, list(zip(ids, specs, strict=True)), at)
    for account_id, delta in sorted(deltas.items()):
        if delta:
            await _move_guarded(session, accounts[account_id], delta)
    return ids


async def _move_guarded(session: AsyncSession, held: _Held, delta: int) -> None:
    """Move one balance by `delta` unless that takes it below its floor (then InsufficientFunds)."""
    moved = await session.execute(
        update(_ACCOUNTS)
        .where(
            _ACCOUNTS.c.id == held.id,
            (_ACCOUNTS.c.floor_minor.is_(None)) | (_ACCOUNTS.c.balance_minor + delta >= _ACCOUNTS.c.floor_minor),
        )
        .values(balance_minor=_ACCOUNTS.c.balance_minor + delta)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        now = await balance(session, held.id)
        raise InsufficientFunds(
            held.code, balance_minor=now.balance_minor, floor_minor=now.floor_minor or 0, needed_minor=-delta
        )


async def reverse(db: Database, session: AsyncSession, transfer_id: int, *, actor: str, memo: str) -> LedgerTransfer:
    """Correct a transfer by posting its negation (kind "reversal"); a transfer is reversed at most once.

    A reversal that would take an account below its floor (the money was spent
    meanwhile) is refused like any other transfer.
    """
    original = await session.get(LedgerTransfer, transfer_id)
    if original is None:
        raise TransferNotFound(f"no ledger transfer with id {transfer_id}", transfer_id=transfer_id)
    legs = await session.execute(
        select(_POSTINGS.c.account_id, _POSTINGS.c.amount_minor)
        .where(_POSTINGS.c.transfer_id == transfer_id)
        .order_by(_POSTINGS.c.id)
    )
    spec = TransferSpec(
        kind=REVERSAL,
        legs=tuple(Leg(account_id, -amount) for account_id, amount in legs),
        reference=f"{REVERSAL}:{transfer_id}",
        memo=memo,
    )
    reversal, replayed = await _post_one(db, session, spec, actor=actor, reverses_id=transfer_id)
    if replayed:
        raise AlreadyReversed(
            f"transfer {transfer_id} was reversed already by transfer {reversal.id}",
            transfer_id=transfer_id,
            reversal_id=reversal.id,
        )
    return reversal


async def _post_one(
    db: Database, session: AsyncSession, spec: TransferSpec, *, actor: str, reverses_id: int | None
) -> tuple[LedgerTransfer, bool]:
    """Post `spec`; returns the transfer and whether it is an earlier one replayed by reference."""
    _check_shape(spec, actor)
    accounts = await _lock_accounts(db, session, (leg.account_id for leg in spec.legs))
    _check_legs(spec, accounts)
    # Replays are answered before the floor check: a retried transfer must not fail for funds spent since.
    if spec.reference is not None and (existing := await _by_reference(session, spec.kind, spec.reference)):
        return await _replayed(session, existing, spec), True
    _apply(spec, accounts)
    at = clock.now()
    inserted = await session.execute(
        db.insert(_TRANSFERS)
        .values(**_transfer_row(spec, actor, at, reverses_id=reverses_id))
        .on_conflict_do_nothing(index_elements=["kind", "reference"])
        .returning(_TRANSFERS.c.id)
    )
    transfer_id = inserted.scalar_one_or_none()
    if transfer_id is None:  # a concurrent transfer under this reference committed after our look
        existing = await _by_reference(session, spec.kind, spec.reference or "")
        if existing is None:
            raise AssertionError(f"transfer {spec.kind}/{spec.reference} neither inserted nor found")
        return await _replayed(session, existing, spec), True
    await _write(session, accounts, [(transfer_id, spec)], at)
    transfer = await session.get(LedgerTransfer, transfer_id)
    if transfer is None:
        raise AssertionError(f"transfer {transfer_id} vanished in its own transaction")
    return transfer, False


def _refuse_reserved_kind(spec: TransferSpec) -> None:
    if spec.kind == REVERSAL:
        raise InvalidTransfer("the kind 'reversal' is reserved for corrections made by reverse()", kind=spec.kind)


def _check_shape(spec: TransferSpec, actor: str) -> None:
    if not 1 <= len(spec.kind) <= 32:
        raise InvalidTransfer("a transfer kind of 1 to 32 characters is required", kind=spec.kind)
    if spec.reference is not None and not 1 <= len(spec.reference) <= 128:
        raise InvalidTransfer("a reference is 1 to 128 characters (or none)", reference=spec.reference)
    if len(spec.memo) > 300:
        raise InvalidTransfer("a memo is at most 300 characters", memo_length=len(spec.memo))
    if not 1 <= len(actor) <= 128:
        raise InvalidTransfer("an actor of 1 to 128 characters is required")
    if len(spec.legs) < 2:
        raise InvalidTransfer(
            f"{_name(spec)}: a transfer needs at least two legs, got {len(spec.legs)}", legs=len(spec.legs)
        )
    for leg in spec.legs:
        if type(leg.debit_minor) is not int or leg.debit_minor == 0:
            raise InvalidTransfer(
                f"{_name(spec)}: every leg moves a non-zero whole number of minor units",
                account_id=leg.account_id,
                debit_minor=repr(leg.debit_minor),
            )


def _name(spec: TransferSpec) -> str:
    return spec.kind if spec.reference is None else f"{spec.kind} {spec.reference}"


async def _lock_accounts(db: Database, session: AsyncSession, account_ids: Iterable[int]) -> dict[int, _Held]:
    """Read (and lock, in ascending id order) every account touched; unknown ids are simply absent."""
    return await _read_accounts(session, account_ids, lock=db)


async def _read_accounts(
    session: AsyncSession, account_ids: Iterable[int], *, lock: Database | None
) -> dict[int, _Held]:
    """Every account touched, by id; locked in ascending id order when `lock` is given."""
    stmt = (
        select(
            _ACCOUNTS.c.id,
            _ACCOUNTS.c.code,
            _ACCOUNTS.c.currency,
            _ACCOUNTS.c.normal,
            _ACCOUNTS.c.floor_minor,
            _ACCOUNTS.c.balance_minor,
        )
        .where(_ACCOUNTS.c.id.in_(sorted(set(account_ids))))
        .order_by(_ACCOUNTS.c.id)
    )
    if lock is not None:
        stmt = lock.lock(stmt)
    return {
        row.id: _Held(
            row.id, row.code, row.currency, _sign(row.normal), row.floor_minor, row.balance_minor, row.balance_minor
        )
        for row in await session.execute(stmt)
    }


def _check_legs(spec: TransferSpec, accounts: dict[int, _Held]) -> None:
    missing = sorted({leg.account_id for leg in spec.legs} - accounts.keys())
    if missing:
        raise UnknownAccount(f"{_name(spec)}: no ledger account with id {missing[0]}", account_ids=missing)
    sums: dict[str, int] = defaultdict(int)
    for leg in spec.legs:
        sums[accounts[leg.account_id].currency] += leg.debit_minor
    off = {currency: total for currency, total in sorted(sums.items()) if total}
    if not off:
        return
    if len(sums) == 1:
        [(currency, total)] = off.items()
        larger, smaller = ("debits", "credits") if total > 0 else ("credits", "debits")
        raise UnbalancedTransfer(
            f"{_name(spec)}: {larger} exceed {smaller} by {abs(total)} minor units of {currency}",
            currency=currency,
            difference_minor=total,
        )
    raise CurrencyMismatch(
        f"{_name(spec)}: legs in {', '.join(sorted(sums))}; each currency must balance on its own",
        unbalanced=off,
    )


def _apply(spec: TransferSpec, accounts: dict[int, _Held]) -> None:
    """Move the held balances by `spec`, refusing to take any account below its floor."""
    deltas: dict[int, int] = defaultdict(int)
    for leg in spec.legs:
        deltas[leg.account_id] += accounts[leg.account_id].sign * leg.debit_minor
    for account_id, delta in sorted(deltas.items()):
        held = accounts[account_id]
        if delta < 0 and held.floor_minor is not None and held.balance_minor + delta < held.floor_minor:
            raise InsufficientFunds(
                held.code, balance_minor=held.balance_minor, floor_minor=held.floor_minor, needed_minor=-delta
            )
    for account_id, delta in deltas.items():
        accounts[account_id].balance_minor += delta


def _transfer_row(spec: TransferSpec, actor: str, at: datetime, *, reverses_id: int | None) -> dict[str, Any]:
    return {
        "kind": spec.kind,
        "reference": spec.reference,
        "memo": spec.memo,
        "actor": actor,
        "at": at,
        "reverses_id": reverses_id,
    }


async def _write(
    session: AsyncSession, accounts: dict[int, _Held], transfers: list[tuple[int, TransferSpec]], at: datetime
) -> None:
    """Insert the postings, then store each changed account's new balance.

    The new balance is computed from the locked read, so without the lock
    (`db.protect` off, tests only) this is exactly the lost update the lock prevents.
    """
    await _insert_postings(session, accounts, transfers, at)
    changed = [
        {"account": held.id, "new_balance": held.balance_minor}
        for held in sorted(accounts.values(), key=lambda held: held.id)
        if held.balance_minor != held.read_minor
    ]
    if changed:
        await session.execute(
            update(_ACCOUNTS)
            .where(_ACCOUNTS.c.id == bindparam("account"))
            .values(balance_minor=bindparam("new_balance")),
            changed,
        )


async def _insert_postings(
    session: AsyncSession, accounts: dict[int, _Held], transfers: list[tuple[int, TransferSpec]], at: datetime
) -> None:
    await insert_rows(
        session,
        _POSTINGS,
        [
            {
                "transfer_id": transfer_id,
                "account_id": leg.account_id,
                "amount_minor": leg.debit_minor,
                "currency": accounts[leg.account_id].currency,
                "at": at,
            }
            for transfer_id, spec in transfers
            for leg in spec.legs
        ],
    )


async def _by_reference(session: AsyncSession, kind: str, reference: str) -> LedgerTransfer | None:
    stmt = select(LedgerTransfer).where(LedgerTransfer.kind == kind, LedgerTransfer.reference == reference)
    return (await session.execute(stmt)).scalar_one_or_none()


async def _replayed(session: AsyncSession, existing: LedgerTransfer, spec: TransferSpec) -> LedgerTransfer:
    posted = await session.execute(
        select(_POSTINGS.c.account_id, _POSTINGS.c.amount_minor).where(_POSTINGS.c.transfer_id == existing.id)
    )
    if sorted((row.account_id, row.amount_minor) for row in posted) != sorted(
        (leg.account_id, leg.debit_minor) for leg in spec.legs
    ):
        raise IdempotencyConflict(
            f"reference {spec.reference!r} of kind {spec.kind!r} was used for a different transfer",
            kind=spec.kind,
            reference=spec.reference,
            transfer_id=existing.id,
        )
    return existing


def _refuse_repeated_references(keys: list[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for kind, reference in keys:
        if (kind, reference) in seen:
            raise IdempotencyConflict(
                f"reference {reference!r} of kind {kind!r} appears twice", kind=kind, reference=reference
            )
        seen.add((kind, reference))


# --- reading ------------------------------------------------------------------------------------


async def entries(
    session: AsyncSession,
    account_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Entry]:
    """An account's postings, oldest first, in [since, until); page on with `after_id` = the last posting id."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}", limit=limit)
    normal = (
        await session.execute(select(_ACCOUNTS.c.normal).where(_ACCOUNTS.c.id == account_id))
    ).scalar_one_or_none()
    if normal is None:
        raise AccountNotFound(f"no ledger account with id {account_id}", account_id=account_id)
    posting, transfer = _POSTINGS.c, _TRANSFERS.c
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
        .join_from(_POSTINGS, _TRANSFERS, transfer.id == posting.transfer_id)
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
    sign = _sign(normal)
    return [
        Entry(row.id, row.transfer_id, row.kind, row.reference, row.memo, row.at, sign * row.amount_minor)
        for row in await session.execute(stmt)
    ]


async def check(session: AsyncSession) -> LedgerCheck:
    """Prove the ledger balances: per transfer, overall, and each account's stored balance against its postings."""
    posting, transfer, account = _POSTINGS.c, _TRANSFERS.c, _ACCOUNTS.c
    total = func.sum(posting.amount_minor)
    problems: list[str] = []
    unbalanced = await session.execute(
        select(posting.transfer_id, posting.currency, total)
        .group_by(posting.transfer_id, posting.currency)
        .having(total != 0)
        .order_by(posting.transfer_id, posting.currency)
    )
    problems += [f"transfer {tid}: its {cur} postings sum to {int(s)}, not 0" for tid, cur, s in unbalanced]
    empty = await session.execute(
        select(transfer.id).where(~exists().where(posting.transfer_id == transfer.id)).order_by(transfer.id)
    )
    problems += [f"transfer {tid} has no postings" for tid in empty.scalars()]
    overall = await session.execute(
        select(posting.currency, total).group_by(posting.currency).having(total != 0).order_by(posting.currency)
    )
    problems += [f"all {cur} postings together sum to {int(s)}, not 0" for cur, s in overall]
    sums = select(posting.account_id, total.label("total")).group_by(posting.account_id).subquery()
    stored = await session.execute(
        select(account.id, account.code, account.normal, account.balance_minor, sums.c.total)
        .outerjoin_from(_ACCOUNTS, sums, sums.c.account_id == account.id)
        .order_by(account.id)
    )
    for account_id, code, normal, balance_minor, summed in stored:
        expected = _sign(normal) * int(summed or 0)
        if balance_minor != expected:
            problems.append(
                f"account {code} (id {account_id}): stored balance {balance_minor}, its postings say {expected}"
            )
    foreign = await session.execute(
        select(account.code, posting.currency, func.count())
        .join_from(_POSTINGS, _ACCOUNTS, account.id == posting.account_id)
        .where(posting.currency != account.currency)
        .group_by(account.code, posting.currency)
        .order_by(account.code, posting.currency)
    )
    problems += [f"account {code}: {n} posting(s) in {cur}, not the account's currency" for code, cur, n in foreign]
    transfers = (await session.execute(select(func.count()).select_from(_TRANSFERS))).scalar_one()
    postings = (await session.execute(select(func.count()).select_from(_POSTINGS))).scalar_one()
    return LedgerCheck(int(transfers), int(postings), problems)
