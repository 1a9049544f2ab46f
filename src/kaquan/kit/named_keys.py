"""Named keys that belong to something an operator creates and replaces: look without creating, retire.

`kit.keys.named_key` creates a key on first use, which suits the process's own
keys. A credential handed to an outsider (a marketplace store's push secret)
must instead exist only after an explicit "create", be readable without being
created by the mere question, and be replaced on rotation: retiring the stored
key lets the next `named_key` call create a fresh one.
"""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.crypto import KeyRing
from kaquan.kit.keys import StoredKey


async def stored_key(session: AsyncSession, keyring: KeyRing, name: str) -> bytes | None:
    """The key called `name`, or None when there is none (nothing is created)."""
    wrapped = (await session.execute(select(StoredKey.wrapped).where(StoredKey.name == name))).scalar_one_or_none()
    return None if wrapped is None else keyring.unwrap(wrapped)


async def retire_key(session: AsyncSession, name: str) -> bool:
    """Forget the key called `name` for good; False when there was none."""
    result = await session.execute(delete(StoredKey).where(StoredKey.name == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]
