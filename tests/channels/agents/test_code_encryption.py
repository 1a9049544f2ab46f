"""Codes in open API answers are encrypted per field for the key that asked, bound to the order."""

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from kaquan.channels.agents.code_encryption import code_key, decrypt_field, encrypt_field
from kaquan.channels.agents.request_signing import new_key_id, new_secret

KEY_ID = "kq_ak_3f9c2a7d1e0b4c55"
SECRET = "kq_sk_" + "s" * 43
KEY = code_key(SECRET, KEY_ID)


def test_a_field_opens_with_the_key_of_the_api_key_and_its_order_number() -> None:
    value = encrypt_field(KEY, "ABCD-EFGH-JKLM-2345", "2611250384017265")

    assert decrypt_field(KEY, value, "2611250384017265") == "ABCD-EFGH-JKLM-2345"
    assert "ABCD" not in value


def test_the_value_is_standard_base64_of_nonce_ciphertext_and_tag_as_the_guide_says() -> None:
    value = encrypt_field(KEY, "ABCD-EFGH-JKLM-2345", "2611250384017265")
    raw = base64.b64decode(value, validate=True)

    assert len(raw) == 12 + len("ABCD-EFGH-JKLM-2345") + 16
    assert AESGCM(KEY).decrypt(raw[:12], raw[12:], b"2611250384017265") == b"ABCD-EFGH-JKLM-2345"


def test_every_field_gets_a_fresh_nonce() -> None:
    values = [encrypt_field(KEY, "same code", "2611250384017265") for _ in range(50)]
    assert len({base64.b64decode(value)[:12] for value in values}) == 50


def test_the_key_is_32_bytes_and_differs_by_secret_and_by_key_id() -> None:
    assert len(KEY) == 32
    assert code_key(SECRET, KEY_ID) == KEY
    assert code_key(new_secret(), KEY_ID) != KEY
    assert code_key(SECRET, new_key_id()) != KEY


@pytest.mark.parametrize(
    "opening",
    [
        pytest.param(lambda value: decrypt_field(KEY, value, "2611250384017266"), id="another order"),
        pytest.param(
            lambda value: decrypt_field(code_key(SECRET, new_key_id()), value, "2611250384017265"), id="another key id"
        ),
        pytest.param(
            lambda value: decrypt_field(code_key(new_secret(), KEY_ID), value, "2611250384017265"), id="another secret"
        ),
        pytest.param(lambda value: decrypt_field(KEY, value[:-4] + "AAA=", "2611250384017265"), id="damaged"),
        pytest.param(lambda value: decrypt_field(KEY, value[:12], "2611250384017265"), id="truncated"),
        pytest.param(lambda value: decrypt_field(KEY, "not base64!", "2611250384017265"), id="not base64"),
    ],
)
def test_a_field_does_not_open_for_another_order_another_key_or_when_damaged(opening: Callable[[str], str]) -> None:
    value = encrypt_field(KEY, "ABCD-EFGH-JKLM-2345", "2611250384017265")
    with pytest.raises(ValueError, match="does not open") as failed:
        opening(value)
    assert "ABCD" not in str(failed.value)


@given(st.text(max_size=200), st.text(min_size=1, max_size=40))
def test_any_text_survives_the_round_trip(plaintext: str, order_no: str) -> None:
    assert decrypt_field(KEY, encrypt_field(KEY, plaintext, order_no), order_no) == plaintext
