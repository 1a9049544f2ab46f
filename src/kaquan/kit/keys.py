"""Long-lived keys stored in the database, wrapped by the master key.

A named key is created once (insert-if-absent, so concurrent first starts agree
on one key) and unwrapped on every start. Only the key ring is in memory.
"""

from sqlalchemy import LargeBinary, String, select
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
