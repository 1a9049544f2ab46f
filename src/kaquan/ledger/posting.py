"""Posting balanced transfers: one at a time, in groups, locking hot accounts last, and reversals.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database, insert_rows
from kaquan.kit.errors import IdempotencyConflict
from kaquan.kit.money import CurrencyMismatch
from kaquan.ledger.accounts import ACCOUNTS, balance, sign_of
from kaquan.ledger.errors import (
    AlreadyReversed,
    InsufficientFunds,
    InvalidTransfer,
    TransferNotFound,
    UnbalancedTransfer,
    UnknownAccount,
)
from kaquan.ledger.models import LedgerBalanceMove, LedgerPosting, LedgerTransfer

REVERSAL = "reversal"
TRANSFERS = cast(Table, LedgerTransfer.__table__)
POSTINGS = cast(Table, LedgerPosting.__table__)
MOVES = cast(Table, LedgerBalanceMove.__table__)


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
            insert(TRANSFERS).returning(TRANSFERS.c.id, sort_by_parameter_order=True),
            [_transfer_row(spec, actor, at, reverses_id=None) for spec in specs],
        )
    except IntegrityError as exc:  # a concurrent transaction committed one of these references first
        raise IdempotencyConflict("a reference of this batch was used by a concurrent transfer") from exc
    return list(inserted.scalars())


async def post_many_locking_last(
    db: Database,
    session: AsyncSession,
    specs: Sequence[TransferSpec],
    *,
    actor: str,
    unfloored_at_commit: bool = False,
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

    With `unfloored_at_commit`, accounts without a floor (a channel's sales, a gateway's receivable, …)
    are not even locked until the commit where the database can do that (`db.moves_balances_at_commit`):
    their moves are written to `ledger_balance_moves` and a deferred trigger applies them while the
    transaction commits, so a slow caller between its booking and its commit holds no one up. Their
    balances, read in the same transaction after this call, do not show the move yet.
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
    at_commit = unfloored_at_commit and db.moves_balances_at_commit
    later = {
        account_id: delta
        for account_id, delta in deltas.items()
        if delta and at_commit and accounts[account_id].floor_minor is None
    }
    if later:
        await session.execute(
            insert(MOVES), [{"account_id": account_id, "delta_minor": delta} for account_id, delta in later.items()]
        )
    for account_id, delta in sorted(deltas.items()):
        if delta and account_id not in later:
            await _move_guarded(session, accounts[account_id], delta)
    return ids


async def _move_guarded(session: AsyncSession, held: _Held, delta: int) -> None:
    """Move one balance by `delta` unless that takes it below its floor (then InsufficientFunds)."""
    moved = await session.execute(
        update(ACCOUNTS)
        .where(
            ACCOUNTS.c.id == held.id,
            (ACCOUNTS.c.floor_minor.is_(None)) | (ACCOUNTS.c.balance_minor + delta >= ACCOUNTS.c.floor_minor),
        )
        .values(balance_minor=ACCOUNTS.c.balance_minor + delta)
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
        select(POSTINGS.c.account_id, POSTINGS.c.amount_minor)
        .where(POSTINGS.c.transfer_id == transfer_id)
        .order_by(POSTINGS.c.id)
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
        db.insert(TRANSFERS)
        .values(**_transfer_row(spec, actor, at, reverses_id=reverses_id))
        .on_conflict_do_nothing(index_elements=["kind", "reference"])
        .returning(TRANSFERS.c.id)
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
            ACCOUNTS.c.id,
            ACCOUNTS.c.code,
            ACCOUNTS.c.currency,
            ACCOUNTS.c.normal,
            ACCOUNTS.c.floor_minor,
            ACCOUNTS.c.balance_minor,
        )
        .where(ACCOUNTS.c.id.in_(sorted(set(account_ids))))
        .order_by(ACCOUNTS.c.id)
    )
    if lock is not None:
        stmt = lock.lock(stmt)
    return {
        row.id: _Held(
            row.id, row.code, row.currency, sign_of(row.normal), row.floor_minor, row.balance_minor, row.balance_minor
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
            update(ACCOUNTS)
            .where(ACCOUNTS.c.id == bindparam("account"))
            .values(balance_minor=bindparam("new_balance")),
            changed,
        )


async def _insert_postings(
    session: AsyncSession, accounts: dict[int, _Held], transfers: list[tuple[int, TransferSpec]], at: datetime
) -> None:
    await insert_rows(
        session,
        POSTINGS,
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
        select(POSTINGS.c.account_id, POSTINGS.c.amount_minor).where(POSTINGS.c.transfer_id == existing.id)
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
