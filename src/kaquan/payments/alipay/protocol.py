"""Alipay's open-platform wire protocol (RSA2), from both sides, as pure functions.

The merchant side signs requests with the app's private key and verifies
responses and notifications with Alipay's public key; the provider side (the
simulator) does the mirror image. Only this module knows the signing strings:

- a request: every non-empty parameter but `sign`, sorted by key, `k=v` joined
  by `&`, unencoded (`sign_type` included);
- a notification: every parameter but `sign` and `sign_type`, sorted, empty
  values included (Alipay's `getSignCheckContentV1`);
- a response: the exact raw JSON text of the `<method>_response` member, as the
  bytes arrived. Alipay escapes `/` as `\\/`, so re-serializing the parsed
  object would not give back what it signed.

Amounts are yuan strings with at most two decimals ("19.90"), converted to fen
with integers only; times are "yyyy-MM-dd HH:mm:ss" in Beijing time (UTC+8,
no daylight saving since 1991, so a fixed offset needs no tz database).
"""

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CHINA_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
SUCCESS_CODE = "10000"
UNAVAILABLE_CODE = "20000"  # "Service Currently Unavailable": retry with the same request

_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")


class ProtocolError(ValueError):
    """A value does not have the shape Alipay's protocol gives it."""


# --- amounts and times -------------------------------------------------------------------------


def yuan(amount_fen: int) -> str:
    """Fen as Alipay's amount string: 1990 -> "19.90"."""
    if type(amount_fen) is not int or amount_fen < 0:
        raise ProtocolError(f"an amount is a non-negative integer of fen, not {amount_fen!r}")
    whole, fen = divmod(amount_fen, 100)
    return f"{whole}.{fen:02d}"


def fen(amount_yuan: str) -> int:
    """Alipay's amount string as fen: "19.90" -> 1990, "19.9" -> 1990, "20" -> 2000; anything else is refused."""
    found = _YUAN.fullmatch(amount_yuan)
    if found is None:
        raise ProtocolError(f"not an amount in yuan: {amount_yuan!r}")
    whole, decimals = found.group(1), found.group(2) or ""
    return int(whole) * 100 + int(decimals.ljust(2, "0"))


def china_time(at: datetime) -> str:
    """An aware datetime as Alipay writes times: Beijing wall-clock time."""
    if at.tzinfo is None:
        raise ProtocolError("times must be aware")
    return at.astimezone(CHINA_TIME).strftime(TIME_FORMAT)


def parse_china_time(text: str) -> datetime:
    """Alipay's "yyyy-MM-dd HH:mm:ss" (Beijing time) as an aware UTC datetime."""
    try:
        naive = datetime.strptime(text, TIME_FORMAT)  # noqa: DTZ007 - the zone is Alipay's, attached next
    except ValueError:
        raise ProtocolError(f"not an Alipay time: {text!r}") from None
    return naive.replace(tzinfo=CHINA_TIME).astimezone(UTC)


# --- keys --------------------------------------------------------------------------------------


def load_private_key(text: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key as PEM, or as the bare base64 (PKCS#8 or PKCS#1 DER) Alipay's key tool writes."""
    data = text.encode() if isinstance(text, str) else text
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(_bare_base64(data), password=None)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"not an RSA private key: {type(exc).__name__}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ProtocolError("RSA2 needs an RSA private key")
    return key


def load_public_key(text: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key as PEM, or as the bare base64 (X.509 SubjectPublicKeyInfo) Alipay's console shows."""
    data = text.encode() if isinstance(text, str) else text
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_bare_base64(data))
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"not an RSA public key: {type(exc).__name__}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProtocolError("RSA2 needs an RSA public key")
    return key


def bare_public_key(key: rsa.RSAPublicKey) -> str:
    """A public key the way Alipay's console shows it: base64 of the X.509 DER, no header, one line."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _bare_base64(data: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


# --- RSA2 --------------------------------------------------------------------------------------


def sign(message: str, key: rsa.RSAPrivateKey) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over the UTF-8 bytes of `message`, base64."""
    signature = key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def verify(message: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, _BadSignature):
        return False
    return True


def request_signing_string(params: Mapping[str, str]) -> str:
    """What a merchant signs: every non-empty parameter but `sign`, sorted, `k=v&…`, unencoded."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "sign" and params[key] != "")


def notification_signing_string(params: Mapping[str, str]) -> str:
    """What Alipay signs in a notification: every parameter but `sign` and `sign_type`, sorted, empty ones too."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key not in ("sign", "sign_type"))


# --- requests ----------------------------------------------------------------------------------


def biz_content(fields: Mapping[str, Any]) -> str:
    """The `biz_content` JSON: compact, UTF-8 text as is (what is signed is exactly what is sent)."""
    return json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))


def signed_request(
    *,
    app_id: str,
    method: str,
    content: Mapping[str, Any],
    key: rsa.RSAPrivateKey,
    at: datetime,
    notify_url: str = "",
    return_url: str = "",
) -> dict[str, str]:
    """The full parameter set of one gateway call, `sign` included."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": china_time(at),
        "version": "1.0",
        "notify_url": notify_url,
        "return_url": return_url,
        "biz_content": biz_content(content),
    }
    params = {name: value for name, value in params.items() if value != ""}
    params["sign"] = sign(request_signing_string(params), key)
    return params


def response_key(method: str) -> str:
    """`alipay.trade.query` answers under `alipay_trade_query_response`."""
    return method.replace(".", "_") + "_response"


# --- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedResponse:
    """One gateway answer: the member Alipay signed, its exact raw text, and the signature beside it."""

    key: str
    raw: str
    body: dict[str, Any]
    sign: str | None

    @property
    def code(self) -> str:
        return str(self.body.get("code", ""))

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS_CODE


def top_level_members(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value lies in a JSON object's text: name -> (start, end), raw offsets."""
    decoder = json.JSONDecoder()
    whitespace = " \t\r\n"
    spans: dict[str, tuple[int, int]] = {}

    def skip(at: int) -> int:
        while at < len(text) and text[at] in whitespace:
            at += 1
        return at

    at = skip(0)
    if not text.startswith("{", at):
        raise ProtocolError("the response is not a JSON object")
    at = skip(at + 1)
    if text.startswith("}", at):
        return spans
    while True:
        try:
            name, at = decoder.raw_decode(text, at)
            if not isinstance(name, str):
                raise ProtocolError("a member name is not a string")
            at = skip(at)
            if not text.startswith(":", at):
                raise ProtocolError("a member name without a value")
            start = skip(at + 1)
            _, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            raise ProtocolError("the response is not valid JSON") from None
        if name in spans:
            raise ProtocolError(f"the member {name!r} appears twice")
        spans[name] = (start, end)
        at = skip(end)
        if text.startswith("}", at):
            if skip(at + 1) != len(text):
                raise ProtocolError("text after the response object")
            return spans
        if not text.startswith(",", at):
            raise ProtocolError("members are not separated by commas")
        at = skip(at + 1)


def read_response(text: str, method: str) -> SignedResponse:
    """Split a gateway answer into the signed member's raw text and its signature (checked by the caller)."""
    spans = top_level_members(text)
    key = response_key(method)
    if key not in spans:
        key = "error_response"  # what the gateway answers when it cannot tell the method
    if key not in spans:
        raise ProtocolError(f"the response has no {response_key(method)} member")
    start, end = spans[key]
    raw = text[start:end]
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ProtocolError(f"{key} is not an object")
    signature = None
    if "sign" in spans:
        found = json.loads(text[slice(*spans["sign"])])
        if not isinstance(found, str):
            raise ProtocolError("the response's sign is not a string")
        signature = found
    return SignedResponse(key=key, raw=raw, body=body, sign=signature)


def response_text(method: str, body: Mapping[str, Any], key: rsa.RSAPrivateKey) -> str:
    """The provider side: a signed answer, written the way Alipay's gateway writes JSON (`/` escaped as `\\/`)."""
    raw = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    return f'{{"{response_key(method)}":{raw},"sign":"{sign(raw, key)}"}}'


# --- notifications -----------------------------------------------------------------------------


def sign_notification(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The provider side: a notification's parameters with `sign_type` and `sign` added."""
    signed = {name: value for name, value in params.items() if name not in ("sign", "sign_type")}
    signed["sign_type"] = "RSA2"
    signed["sign"] = sign(notification_signing_string(signed), key)
    return signed


def verify_notification(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    signature = params.get("sign", "")
    if not signature or params.get("sign_type", "RSA2") != "RSA2":
        return False
    return verify(notification_signing_string(params), signature, key)


def verify_request(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    """The provider side: does a merchant's request carry its own valid RSA2 signature?"""
    signature = params.get("sign", "")
    if not signature or params.get("sign_type") != "RSA2":
        return False
    return verify(request_signing_string(params), signature, key)
