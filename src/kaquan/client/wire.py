"""The wire protocol: KQ1-HMAC-SHA256 request signing, code-field decryption, error bodies.

A copy of the algorithm in docs/open-api.md, kept free of the rest of kaquan so
an agent can vendor this package; tests check it against the server's code.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .models import ApiError

ALGORITHM = "KQ1-HMAC-SHA256"
CODES_INFO = b"kaquan/open-api/codes/v1"
_UNRESERVED = "-._~"


def encode_query(params: Sequence[tuple[str, str]]) -> str:
    """A query string that is already canonical (RFC 3986-encoded, sorted), so what is sent is what is signed."""
    pairs = sorted((quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED)) for name, value in params)
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_query(raw_query: str) -> str:
    pairs = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append(tuple(quote_from_bytes(unquote_to_bytes(part), safe=_UNRESERVED) for part in (name, value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_string(method: str, path: str, raw_query: str, body: bytes, timestamp: str, nonce: str) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join((ALGORITHM, method.upper(), path, canonical_query(raw_query), body_hash, timestamp, nonce))


def code_key(secret: str, key_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=key_id.encode(), info=CODES_INFO).derive(secret.encode())


class Credentials:
    """One API key: signs requests and opens the code fields of the responses to them."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self._secret = secret
        self._codes = AESGCM(code_key(secret, key_id))

    def __repr__(self) -> str:
        return f"Credentials(key_id={self.key_id!r})"

    def sign(self, request: httpx.Request) -> None:
        """Add the four X-Kq-* headers, signing the path, query and body bytes exactly as they will be sent."""
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        timestamp = str(int(time.time()))
        nonce = secrets.token_urlsafe(24)
        canonical = canonical_string(request.method, path, query, request.content, timestamp, nonce)
        request.headers["X-Kq-Key"] = self.key_id
        request.headers["X-Kq-Timestamp"] = timestamp
        request.headers["X-Kq-Nonce"] = nonce
        request.headers["X-Kq-Signature"] = hmac.new(self._secret.encode(), canonical.encode(), "sha256").hexdigest()

    def open_field(self, value: str, order_no: str) -> str:
        """Decrypt one code field: base64(nonce || ciphertext || tag), the order number as associated data."""
        try:
            raw = base64.b64decode(value, validate=True)
            return self._codes.decrypt(raw[:12], raw[12:], order_no.encode()).decode()
        except (InvalidTag, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise ApiError(0, "undecryptable_code", f"a code of order {order_no} does not open with this key") from None


def json_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful response; an ApiError for anything else."""
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    raise error_of(response)


def file_answer(response: httpx.Response) -> bytes:
    """The bytes of a successful download; an ApiError for anything else."""
    if response.is_success:
        return response.content
    raise error_of(response)


def error_of(response: httpx.Response) -> ApiError:
    """The ApiError an error answer stands for (its JSON `error`, or the HTTP status alone)."""
    try:
        error = response.json()["error"]
        code, message, details = str(error["code"]), str(error["message"]), dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.reason_phrase or f"HTTP {response.status_code}", {}
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        details.setdefault("retry_after", int(retry_after))
    return ApiError(response.status_code, code, message, details)
