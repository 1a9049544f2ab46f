"""KQ1-HMAC-SHA256: the canonical string, the signature, nonces, timestamps and key formats."""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaquan.channels import errors
from kaquan.channels.agents.request_signing import (
    NONCE_PATTERN,
    TIMESTAMP_WINDOW_S,
    canonical_query,
    canonical_string,
    check_timestamp,
    new_key_id,
    new_secret,
    sign,
    signature_matches,
)
from kaquan.kit.errors import DomainError

SECRET = "kq_sk_" + "s" * 43


@dataclass(frozen=True)
class Request:
    method: str = "POST"
    path: str = "/open/v1/orders"
    raw_query: str = ""
    body: bytes = b'{"out_order_no":"A-1","sku":"SKU-1","quantity":1}'
    timestamp: str = "1795593600"
    nonce: str = "abcdefghijklmnop"

    def canonical(self) -> str:
        return canonical_string(self.method, self.path, self.raw_query, self.body, self.timestamp, self.nonce)


def test_the_canonical_string_is_seven_lines_without_a_trailing_newline() -> None:
    canonical = canonical_string("post", "/open/v1/orders", "b=2&a=1", b"{}", "1795593600", "abcdefghijklmnop")

    assert canonical.split("\n") == [
        "KQ1-HMAC-SHA256",
        "POST",
        "/open/v1/orders",
        "a=1&b=2",
        hashlib.sha256(b"{}").hexdigest(),
        "1795593600",
        "abcdefghijklmnop",
    ]


def test_a_request_without_body_hashes_the_empty_string() -> None:
    canonical = canonical_string("GET", "/open/v1/balance", "", b"", "1795593600", "abcdefghijklmnop")
    assert canonical.split("\n")[4] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", ""),
        ("limit=50&cursor=", "cursor=&limit=50"),
        ("b=2&a=10&a=9&a=1", "a=1&a=10&a=9&b=2"),
        ("since=2026-11-25T00:00:00Z", "since=2026-11-25T00%3A00%3A00Z"),
        ("since=2026-11-25T00%3a00%3A00Z", "since=2026-11-25T00%3A00%3A00Z"),
        ("q=a%20b", "q=a%20b"),
        ("q=a+b", "q=a%2Bb"),
        ("flag", "flag="),
        ("x=%7e%2D%5F%2e", "x=~-_."),
        ("name=J%c3%bcrgen", "name=J%C3%BCrgen"),
        ("name=Jürgen", "name=J%C3%BCrgen"),
        ("a=1&&b=2&", "a=1&b=2"),
        ("a=b=c", "a=b%3Dc"),
        ("bad=%zz", "bad=%25zz"),
    ],
)
def test_query_parameters_are_decoded_re_encoded_per_rfc_3986_and_sorted(raw: str, canonical: str) -> None:
    assert canonical_query(raw) == canonical


_texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@given(st.lists(st.tuples(_texts, _texts), max_size=6), st.randoms())
def test_the_canonical_query_ignores_order_and_encoding_choices_and_is_a_fixed_point(
    params: list[tuple[str, str]], random: Random
) -> None:
    def every_byte(text: str) -> str:
        return "".join(f"%{byte:02x}" for byte in text.encode())

    plain = "&".join(f"{every_byte(name)}={every_byte(value)}" for name, value in params)
    shuffled = list(params)
    random.shuffle(shuffled)
    other = "&".join(f"{every_byte(name).upper()}={every_byte(value).upper()}" for name, value in shuffled)

    canonical = canonical_query(plain)
    assert canonical == canonical_query(other)
    assert canonical_query(canonical) == canonical
    assert re.fullmatch(r"[A-Za-z0-9\-._~%=&]*", canonical)


def test_the_signature_is_lowercase_hex_hmac_sha256_of_the_canonical_string() -> None:
    canonical = Request().canonical()
    signature = sign(SECRET, canonical)

    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert signature_matches(SECRET, canonical, signature)
    assert not signature_matches("kq_sk_" + "t" * 43, canonical, signature)
    assert not signature_matches(SECRET, canonical, signature.upper())
    assert not signature_matches(SECRET, canonical, "")
    assert not signature_matches(SECRET, canonical, "é" * 64)


@pytest.mark.parametrize(
    "tampered",
    [
        Request(method="PUT"),
        Request(path="/open/v1/orders/"),
        Request(raw_query="x=1"),
        Request(body=b'{"out_order_no":"A-1","sku":"SKU-1","quantity":2}'),
        Request(timestamp="1795593601"),
        Request(nonce="abcdefghijklmnoq"),
    ],
    ids=["method", "path", "query", "body", "timestamp", "nonce"],
)
def test_changing_any_part_of_the_request_breaks_the_signature(tampered: Request) -> None:
    signature = sign(SECRET, Request().canonical())
    assert not signature_matches(SECRET, tampered.canonical(), signature)


@pytest.mark.parametrize("nonce", ["a" * 16, "Z" * 64, "0123456789_-abcDEF", "Xc9_6FyFOwIIOos_uYkzSA"])
def test_nonces_of_16_to_64_url_safe_characters_are_well_formed(nonce: str) -> None:
    assert NONCE_PATTERN.fullmatch(nonce)


@pytest.mark.parametrize("nonce", ["a" * 15, "a" * 65, "abcdefghijklmno+", "abcdefghijklmno/", "abcdefghijklmno=", ""])
def test_other_nonces_are_malformed(nonce: str) -> None:
    assert not NONCE_PATTERN.fullmatch(nonce)


NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("offset", [0, TIMESTAMP_WINDOW_S, -TIMESTAMP_WINDOW_S])
def test_a_timestamp_within_the_window_either_way_passes(offset: int) -> None:
    check_timestamp(str(int((NOW + timedelta(seconds=offset)).timestamp())), NOW, TIMESTAMP_WINDOW_S)


@pytest.mark.parametrize("offset", [TIMESTAMP_WINDOW_S + 1, -TIMESTAMP_WINDOW_S - 1, 86_400])
def test_a_timestamp_outside_the_window_is_refused_with_the_server_time(offset: int) -> None:
    with pytest.raises(errors.TimestampOutOfWindow) as refused:
        check_timestamp(str(int(NOW.timestamp()) + offset), NOW, TIMESTAMP_WINDOW_S)

    assert (refused.value.status, refused.value.code) == (401, "timestamp_out_of_window")
    assert refused.value.details["server_time"] == int(NOW.timestamp())


@pytest.mark.parametrize("timestamp", ["", "1795593600.0", "-1795593600", " 1795593600", "1.7e9", "x", "9" * 13])
def test_a_timestamp_that_is_not_whole_unix_seconds_is_refused(timestamp: str) -> None:
    with pytest.raises(errors.InvalidTimestamp):
        check_timestamp(timestamp, NOW, TIMESTAMP_WINDOW_S)


def test_key_ids_and_secrets_have_their_documented_shapes_and_never_repeat() -> None:
    key_ids = {new_key_id() for _ in range(200)}
    key_secrets = {new_secret() for _ in range(200)}

    assert len(key_ids) == len(key_secrets) == 200
    assert all(re.fullmatch(r"kq_ak_[0-9a-f]{16}", key_id) for key_id in key_ids)
    assert all(re.fullmatch(r"kq_sk_[A-Za-z0-9_-]{43}", secret) for secret in key_secrets)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidSignature(), 401, "invalid_signature"),
        (errors.UnknownKey(), 401, "unknown_key"),
        (errors.KeyRevoked("kq_ak_3f9c2a7d1e0b4c55"), 401, "key_revoked"),
        (errors.TimestampOutOfWindow(1795593600, 300), 401, "timestamp_out_of_window"),
        (errors.NonceReused(), 401, "nonce_reused"),
        (errors.IpNotAllowed("203.0.113.9"), 403, "ip_not_allowed"),
        (errors.SkuNotAvailableForAgent("NETFLIX-1M"), 404, "sku_not_available_for_agent"),
        (errors.AgentNotFound(7), 404, "agent_not_found"),
        (errors.AgentOrderNotFound("A-1"), 404, "order_not_found"),
    ],
)
def test_each_error_carries_the_status_and_code_of_the_contract(error: DomainError, status: int, code: str) -> None:
    assert (error.status, error.code) == (status, code)
    assert error.to_dict()["error"]["code"] == code
