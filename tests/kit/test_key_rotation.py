"""Master key rotation: every wrapped key moves to the new master key; no ciphertext changes.

Processes keep working throughout: a key ring knows its primary key and the
retired ones, and every wrapped key names the master key that wrapped it.
"""

import base64
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from tests.support.builders import buy, given_codes, given_sku, order_view, random_codes

from kaquan import runtime as runtime_module
from kaquan.inventory.models import Batch, Code
from kaquan.inventory.vault import rewrap_batch_keys
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyMismatch, KeyRing, new_key, wrapped_key_id
from kaquan.kit.keys import StoredKey, rewrap_named_keys
from kaquan.runtime import Runtime


def test_a_ring_unwraps_under_its_primary_or_a_retired_key_and_wraps_under_the_primary() -> None:
    old, new, data_key = new_key(), new_key(), new_key()
    wrapped = KeyRing(old).wrap(data_key)
    ring = KeyRing(new, [old])

    rewrapped = ring.rewrap(wrapped)

    assert ring.unwrap(wrapped) == data_key == ring.unwrap(rewrapped) == KeyRing(new).unwrap(rewrapped)
    assert not ring.is_current(wrapped) and ring.is_current(rewrapped)
    assert wrapped_key_id(rewrapped) == ring.primary_id != wrapped_key_id(wrapped)
    with pytest.raises(KeyMismatch):
        KeyRing(old).unwrap(rewrapped)
    with pytest.raises(KeyMismatch):
        KeyRing(new).unwrap(wrapped)


def test_keys_wrapped_before_key_ids_existed_still_open_and_rotate() -> None:
    old, new, data_key = new_key(), new_key(), new_key()
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(old).encrypt(nonce, data_key, b"kaquan/data-key/v1")

    assert wrapped_key_id(legacy) is None
    assert KeyRing(old).unwrap(legacy) == data_key
    assert KeyRing(new, [old]).unwrap(KeyRing(new, [old]).rewrap(legacy)) == data_key
    with pytest.raises(KeyMismatch):
        KeyRing(new).unwrap(legacy)


async def ciphertexts(rt: Runtime) -> list[Any]:
    async with rt.db.read() as session:
        rows = await session.execute(
            select(Code.id, Code.fingerprint, Code.secret_sealed, Code.card_no_sealed).order_by(Code.id)
        )
        return [tuple(row) for row in rows]


async def wrapped_keys(rt: Runtime) -> list[bytes]:
    async with rt.db.read() as session:
        batches = await session.execute(select(Batch.wrapped_key).where(Batch.wrapped_key.is_not(None)))
        named = await session.execute(select(StoredKey.wrapped))
        return [*batches.scalars(), *named.scalars()]


def with_keys(settings: Settings, primary: bytes, *retired: bytes) -> Settings:
    return settings.model_copy(
        update=dict(
            master_key=base64.b64encode(primary).decode(),
            retired_master_keys=",".join(base64.b64encode(k).decode() for k in retired) or None,
        )
    )


async def test_rotation_rewraps_everything_and_leaves_every_ciphertext_as_it_was(rt: Runtime) -> None:
    old = base64.b64decode(rt.settings.master_key or "")
    new = new_key()
    sku = await given_sku(rt, encrypt_card_no=True)
    await given_codes(rt, sku, [f"CARD{n:04d},{secret}" for n, secret in enumerate(random_codes(5))])
    await given_codes(rt, sku, [f"CARD{n + 10:04d},{secret}" for n, secret in enumerate(random_codes(5))])
    bought = await buy(rt, sku, 2)
    sealed_before = await ciphertexts(rt)
    ring = KeyRing(new, [old])

    named = await rewrap_named_keys(rt.db, ring)
    batches = await rewrap_batch_keys(rt.db, ring)

    # orders.lookup, payments.dev_gateway, inventory's fingerprint key, the buyers' verification key and
    # risk's challenge-signing key
    assert (named.rewrapped, batches.rewrapped, batches.current) == (5, 2, 0)
    assert await ciphertexts(rt) == sealed_before
    for wrapped in await wrapped_keys(rt):
        KeyRing(new).unwrap(wrapped)
        with pytest.raises(KeyMismatch):
            KeyRing(old).unwrap(wrapped)

    # A process started with the new key alone opens everything: the buyer still sees the codes.
    fresh = await runtime_module.start(with_keys(rt.settings, new), db=rt.db)
    assert (await order_view(fresh, bought.number, bought.lookup_secret)).codes == bought.codes
    # The old key alone cannot even start.
    with pytest.raises(KeyMismatch):
        await runtime_module.start(with_keys(rt.settings, old), db=rt.db)


async def test_rotation_is_idempotent_and_resumes_where_it_stopped(rt: Runtime) -> None:
    old = base64.b64decode(rt.settings.master_key or "")
    new = new_key()
    sku = await given_sku(rt)
    for _ in range(5):
        await given_codes(rt, sku, random_codes(2))
    ring = KeyRing(new, [old])

    class Interrupted(Exception):
        pass

    def stop_after_first_chunk(_n: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await rewrap_batch_keys_in_chunks(rt, ring, progress=stop_after_first_chunk)
    # Midway, a process knowing both keys reads every batch: no downtime.
    midway = await runtime_module.start(with_keys(rt.settings, new, old), db=rt.db)
    for wrapped in await wrapped_keys(rt):
        midway.keyring.unwrap(wrapped)

    resumed = await rewrap_batch_keys(rt.db, ring)
    again = await rewrap_batch_keys(rt.db, ring)

    assert (resumed.rewrapped, resumed.current) == (3, 2)
    assert (again.rewrapped, again.current) == (0, 5)


async def rewrap_batch_keys_in_chunks(rt: Runtime, ring: KeyRing, **options: Any) -> None:
    from kaquan.kit.keys import rewrap_column

    await rewrap_column(rt.db, ring, Batch.__table__, "id", "wrapped_key", chunk=2, **options)  # type: ignore[arg-type]


async def test_a_dry_run_counts_and_changes_nothing(rt: Runtime) -> None:
    old = base64.b64decode(rt.settings.master_key or "")
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(2))
    before = await wrapped_keys(rt)

    counted = await rewrap_batch_keys(rt.db, KeyRing(new_key(), [old]), dry_run=True)

    assert (counted.rewrapped, counted.current) == (1, 0)
    assert await wrapped_keys(rt) == before


async def test_a_key_no_known_master_key_opens_stops_the_rotation(rt: Runtime) -> None:
    sku = await given_sku(rt)
    await given_codes(rt, sku, random_codes(2))
    before = await wrapped_keys(rt)

    with pytest.raises(KeyMismatch):
        await rewrap_batch_keys(rt.db, KeyRing(new_key()))

    assert await wrapped_keys(rt) == before
