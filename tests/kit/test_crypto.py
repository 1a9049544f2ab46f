"""Envelope encryption and fingerprints: what protects a code at rest."""

import base64
from pathlib import Path

import pytest

from kaquan.kit.crypto import (
    Fingerprinter,
    KeyMismatch,
    KeyRing,
    SecretBox,
    decode_master_key,
    load_or_create_master_key,
    new_key,
)


def test_a_sealed_secret_opens_only_under_its_key_and_its_row() -> None:
    box = SecretBox(new_key())
    sealed = box.seal("ABCD-1234-SECRET", b"row-1")

    assert box.open(sealed, b"row-1") == "ABCD-1234-SECRET"
    assert b"ABCD-1234-SECRET" not in sealed
    with pytest.raises(KeyMismatch):
        box.open(sealed, b"row-2")
    with pytest.raises(KeyMismatch):
        SecretBox(new_key()).open(sealed, b"row-1")


def test_sealing_the_same_secret_twice_gives_different_ciphertexts() -> None:
    box = SecretBox(new_key())
    assert box.seal("same", b"row") != box.seal("same", b"row")


def test_a_bulk_sealer_uses_a_fresh_nonce_for_every_value_and_stops_at_its_count() -> None:
    box = SecretBox(new_key())
    seal = box.bulk_sealer(3)
    sealed = [seal("code", b"row") for _ in range(3)]

    assert len({s[:12] for s in sealed}) == 3
    assert all(box.open(s, b"row") == "code" for s in sealed)
    with pytest.raises(StopIteration):
        seal("one too many", b"row")


def test_data_keys_are_wrapped_by_the_master_key() -> None:
    ring = KeyRing(new_key())
    data_key = new_key()
    wrapped = ring.wrap(data_key)

    assert ring.unwrap(wrapped) == data_key
    assert data_key not in wrapped
    with pytest.raises(KeyMismatch):
        KeyRing(new_key()).unwrap(wrapped)


def test_fingerprints_are_stable_keyed_and_tell_card_and_secret_apart() -> None:
    key = new_key()
    fingerprints = Fingerprinter(key)

    assert fingerprints.of("C1", "S1") == Fingerprinter(key).of("C1", "S1")
    assert fingerprints.of("C1", "S1") != Fingerprinter(new_key()).of("C1", "S1")
    assert fingerprints.of("C1", "S1") != fingerprints.of("C1S", "1")
    assert fingerprints.of(None, "S1") == fingerprints.of("", "S1")


def test_without_a_configured_master_key_one_is_created_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_or_create_master_key(None, tmp_path)
    second = load_or_create_master_key(None, tmp_path)

    assert first == second
    assert (tmp_path / "master.key").stat().st_mode & 0o077 == 0
    assert "KAQUAN_MASTER_KEY is not set" in caplog.text
    assert base64.b64encode(first).decode() not in caplog.text


def test_a_configured_master_key_must_be_32_bytes_of_base64() -> None:
    good = base64.b64encode(new_key()).decode()
    assert len(decode_master_key(good)) == 32
    with pytest.raises(ValueError, match="32 bytes"):
        decode_master_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError):
        decode_master_key("not base64 at all!")
