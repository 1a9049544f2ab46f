"""Long-lived keys stored in the database, wrapped by the master key.

A named key is created once (insert-if-absent, so concurrent first starts agree
on one key) and unwrapped on every start. Only the key ring is in memory.

`rewrap_column` is the engine of `kaquan keys rotate`: it walks any table of
wrapped keys in small transactions and re-wraps each key under the primary
master key. Ciphertexts sealed under those keys are never touched.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, LargeBinary, String, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, new_key
from kaquan.kit.db import Database
from kaquan.kit.models import Base, UTCDateTime


class StoredKey(Base):
    __tablename__ = "kit_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at = mapped_column(UTCDateTime(), nullable=False)


async def named_key(db: Database, session: AsyncSession, keyring: KeyRing, name: str) -> bytes:
    """The key called `name`, created and stored wrapped on first use."""
    table = StoredKey.__table__
    stmt = (
        db.insert(table)  # type: ignore[arg-type]
        .values(name=name, wrapped=keyring.wrap(new_key()), created_at=clock.now())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    await session.execute(stmt)
    wrapped = (await session.execute(select(StoredKey.wrapped).where(StoredKey.name == name))).scalar_one()
    return keyring.unwrap(wrapped)


@dataclass
class Rewrapped:
    """What one rotation pass found: keys it re-wrapped, and keys wrapped under the primary already."""

    rewrapped: int = 0
    current: int = 0

    def __iadd__(self, other: "Rewrapped") -> "Rewrapped":
        self.rewrapped += other.rewrapped
        self.current += other.current
        return self


async def count_wrapped(db: Database, table: Table, wrapped: str) -> int:
    async with db.read() as session:
        column: Column[Any] = table.c[wrapped]
        return int((await session.execute(select(func.count()).where(column.is_not(None)))).scalar_one())


async def rewrap_column(
    db: Database,
    keyring: KeyRing,
    table: Table,
    key: str,
    wrapped: str,
    *,
    chunk: int = 500,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Rewrapped:
    """Re-wrap every key in `table.wrapped` under the primary master key, `chunk` rows per transaction.

    Idempotent and resumable: keys already under the primary are left alone, so a
    pass that stopped half-way simply continues. Each update is guarded by the old
    value, so a concurrent rotation never overwrites a key the other wrote.
    """
    key_column: Column[Any] = table.c[key]
    value_column: Column[Any] = table.c[wrapped]
    done = Rewrapped()
    last: Any = None
    while True:
        async with db.transaction() as session:
            stmt = select(key_column, value_column).where(value_column.is_not(None))
            if last is not None:
                stmt = stmt.where(key_column > last)
            rows = list((await session.execute(stmt.order_by(key_column).limit(chunk))).all())
            if not rows:
                return done
            for row_key, old in rows:
                if keyring.is_current(old):
                    done.current += 1
                    continue
                if dry_run:
                    keyring.unwrap(old)  # proves a known master key opens it
                    done.rewrapped += 1
                    continue
                guarded = update(table).where(key_column == row_key, value_column == old)
                result = await session.execute(guarded.values({wrapped: keyring.rewrap(old)}))
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    done.rewrapped += 1
                else:
                    done.current += 1
            last = rows[-1][0]
        if progress is not None:
            progress(len(rows))


async def rewrap_named_keys(
    db: Database, keyring: KeyRing, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
) -> Rewrapped:
    table: Table = StoredKey.__table__  # type: ignore[assignment]
    return await rewrap_column(db, keyring, table, "name", "wrapped", dry_run=dry_run, progress=progress)
