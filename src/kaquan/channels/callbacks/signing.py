"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign on our side, verify on the receiver's.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the MAC is
HMAC-SHA256 under the base64-decoded part of the secret after `whsec_`, and the
`webhook-signature` header holds space-separated `v1,<base64 MAC>` entries (two
while a rotated secret is in its grace period; any one matching is enough).
`verify_signature` uses nothing of kaquan but its clock, so receivers and the SDK
can copy it as it is.
"""

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime

from kaquan.kit import clock
from kaquan.kit.errors import Unauthorized

SECRET_PREFIX = "whsec_"  # noqa: S105  (the Standard Webhooks prefix, not a secret)
SECRET_BYTES = 32
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class InvalidSignature(Unauthorized):
    """A callback whose signature is missing, does not match, or whose timestamp is outside the tolerance."""

    code = "invalid_webhook_signature"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` entry of the `webhook-signature` header."""
    mac = hmac.digest(_key(secret), f"{event_id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets_: Sequence[str], event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, with one signature per secret."""
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(secret, event_id, timestamp, body) for secret in secrets_),
    }


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300, now: datetime | None = None
) -> None:
    """Raise `InvalidSignature` unless `body` was signed with `secret` less than `tolerance_s` from `now`.

    `headers` may be any mapping (names are matched case-insensitively). `now`
    defaults to the current time.
    """
    named = {name.lower(): value for name, value in headers.items()}
    event_id, sent_at, signatures = (named.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not event_id or not sent_at or not signatures:
        raise InvalidSignature(f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(sent_at)
    except ValueError:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not a unix timestamp") from None
    skew = (now or clock.now()).timestamp() - timestamp
    if abs(skew) > tolerance_s:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is more than {tolerance_s} s away from now", skew_s=int(skew))
    expected = signature(secret, event_id, timestamp, body).encode()
    if any(hmac.compare_digest(entry.encode(), expected) for entry in signatures.split()):
        return
    raise InvalidSignature("no v1 signature matches this secret")
