"""KQ1-HMAC-SHA256: how an agent signs an open API request and how the server checks it.

Pure functions, no I/O: the open API routes read the headers, look the key up
and remember nonces; this module only builds the canonical string, signs it and
judges the timestamp. The algorithm is documented for agents in docs/open-api.md,
whose worked examples a test recomputes with these functions.
"""

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from kaquan.channels.errors import AmbiguousQuery, InvalidTimestamp, TimestampOutOfWindow

ALGORITHM = "KQ1-HMAC-SHA256"
KEY_HEADER = "X-Kq-Key"
TIMESTAMP_HEADER = "X-Kq-Timestamp"
NONCE_HEADER = "X-Kq-Nonce"
SIGNATURE_HEADER = "X-Kq-Signature"
TIMESTAMP_WINDOW_S = 300

NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""Match with `fullmatch`: 16–64 characters of the URL-safe base64 alphabet."""

KEY_ID_PREFIX = "kq_ak_"
SECRET_PREFIX = "kq_sk_"  # noqa: S105 - the prefix of every secret, not a secret
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_UNRESERVED = "-._~"  # with ASCII letters and digits, which quote never encodes


def _reencode(part: str) -> str:
    """Percent-decode to bytes, then encode everything but RFC 3986 unreserved characters as %XX (upper case)."""
    return quote_from_bytes(unquote_to_bytes(part), safe=_UNRESERVED)


def canonical_query(raw_query: str) -> str:
    """The query string as signed: each `name=value` decoded and re-encoded, sorted, joined with `&`.

    A raw `+` never gets this far (`refuse_ambiguous_query`); the server refuses it.
    A parameter without `=` counts as an empty value; empty `&&` segments are no parameters.
    """
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_reencode(name), _reencode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def refuse_ambiguous_query(raw_query: str) -> None:
    """Refuse a raw `+`: signed as a plus sign but read as a space by form decoding, it has no one meaning.

    The canonical query is built from the raw bytes, and the server reads its
    parameters from the same bytes; `+` is the one byte the two could read
    differently, so a client sends a space as `%20` and a plus sign as `%2B`.
    """
    if "+" in raw_query:
        raise AmbiguousQuery()


def _body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_string(method: str, path: str, raw_query: str, body: bytes, timestamp: str, nonce: str) -> str:
    """The seven lines an agent signs; `path` and `raw_query` exactly as they arrived, still percent-encoded."""
    lines = (ALGORITHM, method.upper(), path, canonical_query(raw_query), _body_digest(body), timestamp, nonce)
    return "\n".join(lines)


def sign(secret: str, canonical: str) -> str:
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def signature_matches(secret: str, canonical: str, offered: str) -> bool:
    """Constant-time comparison of the offered signature with the one `secret` gives."""
    return hmac.compare_digest(sign(secret, canonical).encode(), offered.encode())


def check_timestamp(timestamp: str, now: datetime, window_s: int) -> None:
    """Refuse a timestamp that is not whole Unix seconds (`invalid_timestamp`) or more than `window_s` from `now`."""
    server_time = int(now.timestamp())
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidTimestamp(server_time)
    if abs(int(timestamp) - server_time) > window_s:
        raise TimestampOutOfWindow(server_time, window_s)


def new_key_id() -> str:
    """A public key id: `kq_ak_` and 16 hex digits."""
    return KEY_ID_PREFIX + secrets.token_hex(8)


def new_secret() -> str:
    """A key secret: `kq_sk_` and 43 base64url characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)
