"""Callback signatures follow Standard Webhooks: any receiver's own computation agrees with ours."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from kaquan.channels.callbacks.signing import InvalidSignature, new_secret, signed_headers, verify_signature

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
BODY = b'{"id":"evt_1","type":"order.delivered","timestamp":"2026-11-25T08:00:00.000000Z","data":{"n":1}}'


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """The scheme as the Standard Webhooks spec writes it, independently of kaquan's code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    to_sign = f"{msg_id}.{timestamp}.{payload.decode()}".encode()
    return "v1," + base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()


def headers_at(secret: str, at: datetime, body: bytes = BODY) -> dict[str, str]:
    return signed_headers([secret], "evt_1", int(at.timestamp()), body)


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_the_headers_match_an_independent_standard_webhooks_computation() -> None:
    secret = new_secret()
    timestamp = int(NOW.timestamp())

    headers = signed_headers([secret], "evt_1", timestamp, BODY)

    assert headers == {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(secret, "evt_1", timestamp, BODY),
    }
    verify_signature(secret, headers, BODY, now=NOW)


def test_header_names_are_matched_whatever_their_case() -> None:
    secret = new_secret()
    shouting = {name.upper(): value for name, value in headers_at(secret, NOW).items()}
    verify_signature(secret, shouting, BODY, now=NOW)


def test_during_a_rotation_each_secret_finds_its_own_signature() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers([new, old], "evt_1", int(NOW.timestamp()), BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    verify_signature(old, headers, BODY, now=NOW)
    verify_signature(new, headers, BODY, now=NOW)
    with pytest.raises(InvalidSignature):
        verify_signature(new_secret(), headers, BODY, now=NOW)


def test_a_changed_body_id_or_timestamp_breaks_the_signature() -> None:
    secret = new_secret()
    headers = headers_at(secret, NOW)

    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify_signature(secret, headers, BODY.replace(b'"n":1', b'"n":2'), now=NOW)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify_signature(secret, {**headers, "webhook-id": "evt_2"}, BODY, now=NOW)
    moved = str(int(headers["webhook-timestamp"]) + 1)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify_signature(secret, {**headers, "webhook-timestamp": moved}, BODY, now=NOW)


@pytest.mark.parametrize("skew_s", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused_even_when_signed(skew_s: int) -> None:
    secret = new_secret()
    headers = headers_at(secret, NOW + timedelta(seconds=skew_s))

    with pytest.raises(InvalidSignature, match="more than 300 s away"):
        verify_signature(secret, headers, BODY, now=NOW)
    verify_signature(secret, headers, BODY, now=NOW, tolerance_s=abs(skew_s))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    secret = new_secret()
    headers = headers_at(secret, NOW)
    del headers[missing]

    with pytest.raises(InvalidSignature, match="missing"):
        verify_signature(secret, headers, BODY, now=NOW)


def test_an_unversioned_or_garbled_signature_is_refused() -> None:
    secret = new_secret()
    headers = headers_at(secret, NOW)
    bare = headers["webhook-signature"].removeprefix("v1,")

    for garbled in (bare, "v2," + bare, "v1,", "v1,%%%"):
        with pytest.raises(InvalidSignature):
            verify_signature(secret, {**headers, "webhook-signature": garbled}, BODY, now=NOW)
    with pytest.raises(InvalidSignature, match="unix timestamp"):
        verify_signature(secret, {**headers, "webhook-timestamp": "yesterday"}, BODY, now=NOW)
