"""Vouchers the merchant issues itself (自发券): codes drawn from `secrets`, stored like any other code.

A voucher code is 20 characters of a 32-letter alphabet without the look-alikes
0/O and 1/I: 100 bits of entropy, read and printed in groups of five
(`K7QX2-MD9RT-...`). The canonical form — upper case, no dashes or spaces — is
what the inventory stores and fingerprints; `normalize` turns whatever a
scanner or a person typed into it, so `k7qx2 md9rt …` and `K7QX2-MD9RT-…`
name the same voucher.

Generated codes go through the normal import (`importing.import_codes`): they
are sealed under their batch key, fingerprinted, unique across the whole
inventory, and counted in stock like any other code.
"""

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog.models import Product, Sku
from kaquan.inventory import CodeLine, ParsedFile, Vault, importing
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 20
GROUP = 5
ENTROPY_BITS = LENGTH * (len(ALPHABET).bit_length() - 1)
MAX_PER_BATCH = 1_000_000
VOUCHER_KINDS = frozenset({"voucher"})
# Separators people and scanners put into a code; the stored form has none of them.
_SEPARATORS = str.maketrans("", "", "-_ \t\u00a0\u3000")


class NotAVoucherSku(BadInput):
    """Only SKUs of a voucher product can be issued (and redeemed) by the merchant itself."""

    code = "not_a_voucher_sku"


def new_code() -> str:
    """One voucher code in canonical form, every character drawn from the OS's CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    """The printed form: groups of five joined by dashes."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize(typed: str) -> str:
    """The canonical form of a typed or scanned code: stripped, upper case, no dashes or spaces."""
    return typed.strip().upper().translate(_SEPARATORS)


@dataclass(frozen=True)
class GeneratedBatch:
    batch_id: int
    codes: list[str]
    """Canonical codes, in plaintext: hand them to the caller once and keep them nowhere else."""


async def is_voucher_sku(session: AsyncSession, sku_id: int) -> bool:
    kind = (
        await session.execute(select(Product.kind).join(Sku, Sku.product_id == Product.id).where(Sku.id == sku_id))
    ).scalar_one_or_none()
    return kind in VOUCHER_KINDS


async def generate(
    db: Database,
    session: AsyncSession,
    vault: Vault,
    sku: Sku,
    count: int,
    *,
    actor: str,
    meta: importing.BatchMeta | None = None,
    progress: importing.Progress | None = None,
) -> GeneratedBatch:
    """Issue `count` new voucher codes of `sku` as one batch; returns the batch and the plaintext codes."""
    if not 1 <= count <= MAX_PER_BATCH:
        raise BadInput(f"a voucher batch holds 1 to {MAX_PER_BATCH} codes", count=count, max=MAX_PER_BATCH)
    if not await is_voucher_sku(session, sku.id):
        raise NotAVoucherSku(f"SKU {sku.code} is not a voucher product; only vouchers are issued here", sku=sku.code)
    codes: set[str] = set()
    while len(codes) < count:  # a repeat within 100 bits is all but impossible, but cheap to rule out
        codes.add(new_code())
    ordered = list(codes)
    parsed = ParsedFile(
        encoding="generated",
        layout="single",
        lines=[CodeLine(n, None, code, None) for n, code in enumerate(ordered, start=1)],
        problems=[],
    )
    result = await importing.import_codes(
        db,
        session,
        vault,
        sku,
        parsed,
        meta or importing.BatchMeta(supplier="self-issued", source="generated"),
        actor=actor,
        progress=progress,
    )
    if result.batch_id is None:  # an all-or-nothing import stores every code or raises
        raise RuntimeError("the voucher import stored no batch")
    return GeneratedBatch(result.batch_id, ordered)
