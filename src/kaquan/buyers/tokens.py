"""The signed buyer token: `kqb1.<contact, expiry>.<tag>`, issued once a contact is verified.

Stateless on purpose: a flash sale checks it on every purchase without a database
read. It names the contact it proves, so it lasts only `buyer_token_hours`; a token
cannot be revoked before then (a buyer who lost one verifies again; the limit still
counts the contact, so a stolen token buys nothing beyond that contact's share).
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kaquan.kit.crypto import keyed_hash, same_digest

PREFIX = "kqb1"
_TAG_BYTES = 24


@dataclass(frozen=True)
class BuyerToken:
    token: str
    contact: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BuyerTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, body: str) -> str:
        return _b64(keyed_hash(self._key, f"{PREFIX}\n{body}")[:_TAG_BYTES])

    def issue(self, contact: str, *, now: datetime, ttl: timedelta) -> BuyerToken:
        expires_at = (now + ttl).replace(microsecond=0)
        body = _b64(json.dumps({"c": contact, "exp": int(expires_at.timestamp())}, separators=(",", ":")).encode())
        return BuyerToken(f"{PREFIX}.{body}.{self._tag(body)}", contact, expires_at)

    def open(self, token: str, *, now: datetime) -> str | None:
        """The verified contact a token names, or None for a forged, damaged or expired one."""
        prefix, _, rest = token.partition(".")
        body, _, tag = rest.partition(".")
        if prefix != PREFIX or not body or len(token) > 1024:
            return None
        if not same_digest(tag.encode(), self._tag(body).encode()):
            return None
        try:
            claims = json.loads(_unb64(body))
            contact, expires = claims["c"], claims["exp"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not isinstance(contact, str) or not isinstance(expires, int):
            return None
        return contact if datetime.fromtimestamp(expires, UTC) > now else None
