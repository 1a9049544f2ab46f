"""Sealing and opening code secrets: the inventory's view of the key ring."""

from collections.abc import Callable

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.models import Batch
from kaquan.kit.crypto import Fingerprinter, KeyRing, SecretBox
from kaquan.kit.db import Database
from kaquan.kit.keys import Rewrapped, count_wrapped, named_key, rewrap_column

FINGERPRINT_KEY = "inventory.fingerprint"


class Vault:
    """The master key ring plus the fingerprint key; opens batch keys on demand."""

    def __init__(self, keyring: KeyRing, fingerprint_key: bytes) -> None:
        self.keyring = keyring
        self.fingerprints = Fingerprinter(fingerprint_key)
        self._boxes: dict[bytes, SecretBox] = {}

    def box(self, wrapped_key: bytes) -> SecretBox:
        box = self._boxes.get(wrapped_key)
        if box is None:
            if len(self._boxes) > 1024:
                self._boxes.clear()
            box = self._boxes[wrapped_key] = SecretBox(self.keyring.unwrap(wrapped_key))
        return box


async def open_vault(db: Database, session: AsyncSession, keyring: KeyRing) -> Vault:
    return Vault(keyring, await named_key(db, session, keyring, FINGERPRINT_KEY))


def _batches() -> Table:
    table: Table = Batch.__table__  # type: ignore[assignment]
    return table


async def count_batch_keys(db: Database) -> int:
    return await count_wrapped(db, _batches(), "wrapped_key")


async def rewrap_batch_keys(
    db: Database, keyring: KeyRing, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
) -> Rewrapped:
    """Re-wrap every batch's data key under the primary master key (codes stay sealed as they are)."""
    return await rewrap_column(db, keyring, _batches(), "id", "wrapped_key", dry_run=dry_run, progress=progress)
