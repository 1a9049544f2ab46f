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
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kaquan.kit.errors import DomainError

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
_WRAP_AAD = b"kaquan/data-key/v1"


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


class KeyRing:
    """Wraps and unwraps data keys under the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = AESGCM(master_key)

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, data_key, _WRAP_AAD)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _WRAP_AAD)
        except InvalidTag:
            raise KeyMismatch("the master key does not match the keys stored in this database") from None


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
