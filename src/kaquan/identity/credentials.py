"""The cryptography of admin sign-in: argon2id passwords, opaque tokens, RFC 6238 TOTP."""

import asyncio
import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 12
MAX_PASSWORD = 256  # argon2 cost does not grow with length, but request bodies should stay small

TOTP_STEP_S = 30
TOTP_DIGITS = 6
TOTP_DRIFT_STEPS = 1


class Passwords:
    """argon2id hashing; verification always costs one argon2 run, known user or not."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash, burn the same time and say no."""
        if stored is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            stored = self._dummy
            password = "\x00" + password  # can never match the random dummy
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self.verify, stored, password)


_passwords = Passwords(PasswordHasher())


def passwords() -> Passwords:
    return _passwords


def use_hasher(hasher: PasswordHasher) -> Passwords:
    """Swap the argon2 parameters (tests use the cheapest profile); returns the previous setting."""
    global _passwords
    previous, _passwords = _passwords, Passwords(hasher)
    return previous


def restore(previous: Passwords) -> None:
    global _passwords
    _passwords = previous


def new_token(kind: str) -> tuple[str, str]:
    """A fresh opaque token `kq<kind>_<8 visible>_<secret>` and its visible prefix (for listings)."""
    visible = secrets.token_hex(4)
    return f"kq{kind}_{visible}_{secrets.token_urlsafe(32)}", f"kq{kind}_{visible}"


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- TOTP (RFC 6238 over RFC 4226, HMAC-SHA1, 30 s, 6 digits) --------------------------------------


def new_totp_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def totp_step(at: datetime) -> int:
    return int(at.timestamp()) // TOTP_STEP_S


def totp_code(secret: str, step: int) -> str:
    mac = hmac.digest(base64.b32decode(secret), struct.pack(">Q", step), "sha1")
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**TOTP_DIGITS:0{TOTP_DIGITS}d}"


def totp_match(secret: str, code: str, at: datetime, *, after_step: int | None) -> int | None:
    """The time step `code` belongs to (now ±1 step), if later than `after_step`; else None.

    Every candidate step is compared, in constant time, so timing says nothing about which matched.
    """
    now = totp_step(at)
    found: int | None = None
    for step in range(now - TOTP_DRIFT_STEPS, now + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp_code(secret, step), code.strip()) and (after_step is None or step > after_step):
            found = step
    return found


def totp_uri(secret: str, username: str, issuer: str = "kaquan") -> str:
    label = quote(f"{issuer}:{username}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&algorithm=SHA1&digits=6&period=30"
