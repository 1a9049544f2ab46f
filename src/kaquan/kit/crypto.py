"""Envelope encryption of code secrets and keyed fingerprints.

Every batch of codes gets its own random 256-bit data key; secrets are sealed
with AES-256-GCM under it, bound (as associated data) to the code's fingerprint
so a ciphertext cannot be moved to another row. The data key is stored wrapped
by the master key, so rotating the master key re-wraps keys and never touches
ciphertexts. Fingerprints are HMAC-SHA256 under a fingerprint key that is
itself wrapped by the master key and never changes: the same code always gets
the same fingerprint, which is what lets a unique index refuse duplicates and
lets leak tracing work without decrypting the inventory.
"""

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kaquan.kit.errors import DomainError

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8
_WRAP_AAD = b"kaquan/data-key/v1"
_WRAP_V2 = b"KQw2"
_HEADER_BYTES = len(_WRAP_V2) + KEY_ID_BYTES
_V2_BYTES = _HEADER_BYTES + NONCE_BYTES + KEY_BYTES + 16  # 16: the GCM tag


class KeyMismatch(DomainError):
    """The master key cannot unwrap the keys stored in this database."""

    status = 500
    code = "master_key_mismatch"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def decode_master_key(text: str) -> bytes:
    key = base64.b64decode(text.strip(), validate=True)
    if len(key) != KEY_BYTES:
        raise ValueError(f"KAQUAN_MASTER_KEY must be base64 of {KEY_BYTES} bytes, got {len(key)}")
    return key


def decode_retired_master_keys(text: str | None) -> list[bytes]:
    """KAQUAN_RETIRED_MASTER_KEYS: comma-separated base64 master keys accepted for unwrapping only."""
    keys = []
    for number, part in enumerate((text or "").split(","), start=1):
        if not part.strip():
            continue
        try:
            keys.append(decode_master_key(part))
        except ValueError:  # binascii.Error too; neither message holds key material
            raise ValueError(f"KAQUAN_RETIRED_MASTER_KEYS: key {number} is not base64 of {KEY_BYTES} bytes") from None
    return keys


def load_or_create_master_key(configured: str | None, var_dir: Path) -> bytes:
    """The configured master key, else a key file under var/ created once with a loud warning."""
    if configured:
        return decode_master_key(configured)
    path = var_dir / "master.key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(new_key()).decode() + "\n")
        log.warning(
            "KAQUAN_MASTER_KEY is not set: created %s. Fine for a demo; production must supply "
            "its own master key and keep it out of the database backups.",
            path,
        )
    return decode_master_key(path.read_text())


def master_key_id(master_key: bytes) -> bytes:
    """A short public name of a master key: which key wrapped a data key, without revealing the key."""
    return hmac.digest(master_key, b"kaquan/master-key-id/v1", "sha256")[:KEY_ID_BYTES]


class KeyRing:
    """Wraps data keys under the primary master key; unwraps under the primary or any retired one.

    A wrapped key reads `v2 | key id | nonce | AES-GCM(data key)`, so a reader knows
    which master key to use and a rotation knows what is left to re-wrap. Keys
    wrapped before key ids existed (`nonce | ciphertext`) are tried under every
    known master key.
    """

    def __init__(self, master_key: bytes, retired: Sequence[bytes] = ()) -> None:
        self.primary_id = master_key_id(master_key)
        self._primary = AESGCM(master_key)
        self._known: dict[bytes, AESGCM] = {master_key_id(key): AESGCM(key) for key in retired}
        self._known[self.primary_id] = self._primary

    @property
    def key_ids(self) -> frozenset[bytes]:
        return frozenset(self._known)

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        header = _WRAP_V2 + self.primary_id
        return header + nonce + self._primary.encrypt(nonce, data_key, _WRAP_AAD + header)

    def unwrap(self, wrapped: bytes) -> bytes:
        key_id = wrapped_key_id(wrapped)
        if key_id is None:
            for master in self._known.values():
                try:
                    return master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _WRAP_AAD)
                except InvalidTag:
                    continue
            raise _mismatch()
        named = self._known.get(key_id)
        if named is None:
            raise _mismatch()
        header, body = wrapped[:_HEADER_BYTES], wrapped[_HEADER_BYTES:]
        try:
            return named.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], _WRAP_AAD + header)
        except InvalidTag:
            raise _mismatch() from None

    def is_current(self, wrapped: bytes) -> bool:
        """Wrapped under the primary master key already (nothing for a rotation to do)."""
        return wrapped_key_id(wrapped) == self.primary_id

    def rewrap(self, wrapped: bytes) -> bytes:
        """The same data key wrapped under the primary master key."""
        return wrapped if self.is_current(wrapped) else self.wrap(self.unwrap(wrapped))


def wrapped_key_id(wrapped: bytes) -> bytes | None:
    """The id of the master key that wrapped `wrapped`, or None for a key wrapped before ids existed."""
    if len(wrapped) == _V2_BYTES and wrapped.startswith(_WRAP_V2):
        return wrapped[len(_WRAP_V2) : _HEADER_BYTES]
    return None


def _mismatch() -> KeyMismatch:
    return KeyMismatch("the master key does not match the keys stored in this database")


class SecretBox:
    """AES-256-GCM under one data key; each seal uses a fresh random nonce."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)

    def seal(self, plaintext: str, bound_to: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), bound_to)

    def bulk_sealer(self, count: int) -> Callable[[str, bytes], bytes]:
        """`seal` for up to `count` values, drawing all their random nonces in one system call.

        Sealing millions of codes is bound by per-call overhead; a nonce pool keeps
        every nonce random and unique while costing one `urandom` per chunk.
        """
        pool = os.urandom(NONCE_BYTES * count)
        encrypt = self._aead.encrypt
        offsets = iter(range(0, len(pool), NONCE_BYTES))

        def seal(plaintext: str, bound_to: bytes) -> bytes:
            start = next(offsets)
            nonce = pool[start : start + NONCE_BYTES]
            return nonce + encrypt(nonce, plaintext.encode(), bound_to)

        return seal

    def open(self, sealed: bytes, bound_to: bytes) -> str:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], bound_to).decode()
        except InvalidTag:
            raise KeyMismatch("a sealed code does not open under its batch key") from None


class Fingerprinter:
    """Keyed, stable fingerprint of a code: equal codes, equal fingerprints; nothing else learnable."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, card_no: str | None, secret: str) -> bytes:
        return hmac.digest(self._key, f"{card_no or ''}\x1f{secret}".encode(), "sha256")


def keyed_hash(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def same_digest(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
