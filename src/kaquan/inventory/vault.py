"""Sealing and opening code secrets: the inventory's view of the key ring."""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.crypto import Fingerprinter, KeyRing, SecretBox
from kaquan.kit.db import Database
from kaquan.kit.keys import named_key

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
