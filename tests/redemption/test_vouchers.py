"""Vouchers the merchant issues itself: ≥ 80 bits each, sealed, fingerprinted, unique, counted in stock."""

import math
from collections import Counter

import pytest
from sqlalchemy import func, select
from tests.support.builders import given_sku, stock_of
from tests.support.vouchers import given_voucher_sku, given_vouchers

from kaquan.catalog import service as catalog
from kaquan.inventory.intake import importing
from kaquan.inventory.models import Batch, Code
from kaquan.kit.errors import BadInput
from kaquan.redemption import vouchers
from kaquan.runtime import Runtime


def test_a_voucher_code_carries_at_least_80_bits_from_an_unambiguous_alphabet() -> None:
    code = vouchers.new_code()

    assert len(vouchers.ALPHABET) == len(set(vouchers.ALPHABET)) == 32
    assert not set("01OI") & set(vouchers.ALPHABET)
    assert vouchers.ENTROPY_BITS == vouchers.LENGTH * math.log2(len(vouchers.ALPHABET)) == 100
    assert len(code) == vouchers.LENGTH
    assert set(code) <= set(vouchers.ALPHABET)


def test_codes_use_the_whole_alphabet_and_never_repeat() -> None:
    codes = [vouchers.new_code() for _ in range(2000)]

    assert len(set(codes)) == len(codes)
    letters = Counter("".join(codes))
    assert set(letters) == set(vouchers.ALPHABET)
    # 40,000 draws over 32 letters: each about 1,250; a broken generator is far outside 1,000–1,500.
    assert all(1000 < n < 1500 for n in letters.values()), letters


def test_printed_typed_and_scanned_forms_normalize_to_the_stored_form() -> None:
    code = vouchers.new_code()
    printed = vouchers.display(code)

    assert printed.count("-") == 3 and printed.replace("-", "") == code
    assert len(printed.split("-")[0]) == vouchers.GROUP
    for typed in (printed, printed.lower(), f"  {printed}\n", printed.replace("-", " "), code.lower()):
        assert vouchers.normalize(typed) == code


async def test_generated_vouchers_are_imported_sealed_fingerprinted_and_counted(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)

    codes = await given_vouchers(rt, sku, 50, sold=False)

    assert len(set(codes)) == 50
    stock = await stock_of(rt, sku)
    assert (stock.imported, stock.available, stock.sold) == (50, 50, 0)
    async with rt.db.read() as session:
        rows = (await session.execute(select(Code).where(Code.sku_id == sku.id))).scalars().all()
        batch = (await session.execute(select(Batch).where(Batch.sku_id == sku.id))).scalar_one()
    by_fingerprint = {row.fingerprint: row for row in rows}
    box = rt.vault.box(batch.wrapped_key or b"")
    for code in codes:
        row = by_fingerprint[rt.vault.fingerprints.of(None, code)]
        assert code.encode() not in row.secret_sealed
        assert row.card_no is None
        assert box.open(row.secret_sealed, row.fingerprint) == code
    assert batch.created_by == "test"


async def test_issuing_is_refused_for_a_sku_that_is_not_a_voucher(rt: Runtime) -> None:
    sku = await given_sku(rt)

    with pytest.raises(vouchers.NotAVoucherSku):
        await given_vouchers(rt, sku, 3, sold=False)

    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Batch))).scalar_one() == 0


@pytest.mark.parametrize("count", [0, -1, vouchers.MAX_PER_BATCH + 1])
async def test_a_count_out_of_range_is_refused_and_issues_nothing(rt: Runtime, count: int) -> None:
    sku = await given_voucher_sku(rt)

    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        with pytest.raises(BadInput):
            await vouchers.generate(rt.db, session, rt.vault, target, count, actor="test")

    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Code))).scalar_one() == 0


async def test_progress_is_reported_while_storing(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    seen: list[importing.Advance] = []

    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        batch = await vouchers.generate(rt.db, session, rt.vault, target, 120, actor="test", progress=seen.append)

    assert [(step.phase, step.codes) for step in seen] == [("storing", 120)]
    assert len(batch.codes) == 120
