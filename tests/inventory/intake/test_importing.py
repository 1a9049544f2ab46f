"""Importing stock: a code file becomes one sealed batch, a serial range one segment.

A code is imported at most once, ever (across files, batches and SKUs), its
secret is stored sealed and bound to its row, every refusal names the line and
the reason without echoing a secret, and a refused import changes nothing.
"""

import asyncio
import contextlib
import datetime
import gc
import json
import re
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from tests.support.builders import GivenSku, given_segment_sku, given_sku, random_codes, stock_of

from kaquan.all_models import metadata
from kaquan.audit.models import AuditEntry
from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.inventory.errors import ImportRejected, SegmentOverlap, WarehouseNotFound, WrongStockKind
from kaquan.inventory.intake import importing, parsing, segments
from kaquan.inventory.intake.parsing import CARD_COLUMNS, EXPIRY_COLUMNS, SECRET_COLUMNS, ImportFileError
from kaquan.inventory.levels import Stock, stock
from kaquan.inventory.models import Batch, Code, Segment, SegmentRange, Warehouse
from kaquan.kit.crypto import KeyMismatch
from kaquan.kit.errors import BadInput, DomainError
from kaquan.runtime import Runtime

SIXTEEN_UPPER = CodeRule(min_length=16, max_length=16, alphabet="upper_alnum")
_HEADER_WORDS = SECRET_COLUMNS | CARD_COLUMNS | EXPIRY_COLUMNS


def file_of(*lines: str, encoding: str = "utf-8") -> bytes:
    return "\n".join(lines).encode(encoding)


def values_in(data: bytes) -> list[str]:
    """Every field of a code file that could be a card number or a secret (headers aside)."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        content = data.decode("gb18030", errors="ignore")
    fields = (field.strip() for field in re.split(r"[,\t\r\n，]", content))
    return [field for field in fields if len(field) >= 4 and field.lower() not in _HEADER_WORDS]


def assert_nothing_echoed(error: DomainError, data: bytes) -> None:
    """An error reaches logs and screens: it must not carry any card number or secret of the file."""
    shown = error.message + json.dumps(error.details, ensure_ascii=False, default=str)
    leaked = [value for value in values_in(data) if value in shown]
    assert leaked == [], f"{error.code} echoes file content: {shown}"


async def import_file(
    rt: Runtime,
    sku: GivenSku,
    data: bytes,
    *,
    skip_invalid: bool = False,
    meta: importing.BatchMeta | None = None,
) -> importing.ImportResult:
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        return await importing.import_file(
            rt.db,
            session,
            rt.vault,
            target,
            data,
            meta or importing.BatchMeta(),
            actor="test",
            skip_invalid=skip_invalid,
        )


async def rejected(
    rt: Runtime, sku: GivenSku, data: bytes, *, skip_invalid: bool = False, meta: importing.BatchMeta | None = None
) -> ImportRejected:
    """The import is refused as a whole, without a secret in the error, and nothing changed."""
    before = await snapshot(rt)
    with pytest.raises(ImportRejected) as caught:
        await import_file(rt, sku, data, skip_invalid=skip_invalid, meta=meta)
    assert caught.value.code == "import_rejected"
    assert caught.value.status == 400
    assert_nothing_echoed(caught.value, data)
    assert await snapshot(rt) == before
    return caught.value


def problems_of(error: ImportRejected) -> list[tuple[int, str]]:
    return [(p["line_no"], p["code"]) for p in error.details["problems"]]


def skipped_of(result: importing.ImportResult) -> list[tuple[int, str]]:
    return [(p["line_no"], p["code"]) for p in result.skipped]


async def add_segment(
    rt: Runtime,
    sku: GivenSku,
    *,
    start: int,
    end: int,
    prefix: str = "GC",
    width: int = 8,
    meta: importing.BatchMeta | None = None,
) -> Batch:
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        return await segments.add_segment(
            rt.db,
            session,
            target,
            prefix=prefix,
            width=width,
            start=start,
            end=end,
            meta=meta or importing.BatchMeta(),
            actor="test",
        )


@dataclass(frozen=True)
class Snapshot:
    batches: int
    codes: int
    segments: int
    segment_ranges: int
    audit_entries: int
    stock: tuple[tuple[int, str, int, int, int, int, int], ...]


async def snapshot(rt: Runtime) -> Snapshot:
    """Everything an import could change."""

    async def count(session: Any, model: Any) -> int:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

    async with rt.db.read() as session:
        rows = await stock(session)
        return Snapshot(
            batches=await count(session, Batch),
            codes=await count(session, Code),
            segments=await count(session, Segment),
            segment_ranges=await count(session, SegmentRange),
            audit_entries=await count(session, AuditEntry),
            stock=tuple((s.sku_id, s.warehouse, s.imported, s.available, s.reserved, s.sold, s.voided) for s in rows),
        )


@dataclass(frozen=True)
class StoredCode:
    batch_id: int
    sku_id: int
    warehouse_id: int
    status: str
    card_no: str | None
    secret: str
    expires_on: datetime.date | None


async def stored(rt: Runtime, secret: str, card_no: str | None = None) -> StoredCode | None:
    """The code stored for exactly (card_no, secret), opened with its batch key; None if there is none."""
    fingerprint = rt.vault.fingerprints.of(card_no, secret)
    async with rt.db.read() as session:
        found = (
            await session.execute(
                select(Code, Batch.wrapped_key)
                .join(Batch, Batch.id == Code.batch_id)
                .where(Code.fingerprint == fingerprint)
            )
        ).one_or_none()
    if found is None:
        return None
    code, wrapped_key = found
    assert wrapped_key is not None, "a batch of codes always has a data key"
    box = rt.vault.box(wrapped_key)
    return StoredCode(
        batch_id=code.batch_id,
        sku_id=code.sku_id,
        warehouse_id=code.warehouse_id,
        status=code.status,
        card_no=box.open(code.card_no_sealed, code.fingerprint) if code.card_no_sealed else code.card_no,
        secret=box.open(code.secret_sealed, code.fingerprint),
        expires_on=code.expires_on,
    )


async def raw_rows(rt: Runtime, table: str) -> list[dict[str, Any]]:
    """The rows as the driver returns them, every column, nothing decoded by the model."""
    async with rt.db.read() as session:
        result = await session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - table names from metadata
        return [dict(row._mapping) for row in result]


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def places_holding(rt: Runtime, plaintext: str) -> list[str]:
    """Every table.column anywhere in the database whose stored bytes contain `plaintext`."""
    needle = plaintext.encode()
    found = []
    for table in metadata.sorted_tables:
        for row in await raw_rows(rt, table.name):
            found += [f"{table.name}.{column}" for column, value in row.items() if needle in as_bytes(value)]
    return found


async def batches(rt: Runtime) -> list[Batch]:
    async with rt.db.read() as session:
        return list((await session.execute(select(Batch).order_by(Batch.id))).scalars())


# --- a file becomes one batch -------------------------------------------------------------------


async def test_a_file_of_codes_becomes_one_batch_with_every_code_available(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    codes = random_codes(40)
    meta = importing.BatchMeta(supplier="Acme", unit_cost_minor=800, expires_on=datetime.date(2027, 6, 30))

    result = await import_file(rt, sku, file_of(*codes), meta=meta)

    assert (result.imported, result.skipped, result.layout, result.encoding) == (40, [], "single", "utf-8")
    [batch] = await batches(rt)
    assert batch.id == result.batch_id
    assert (batch.sku_id, batch.kind, batch.quantity, batch.supplier, batch.unit_cost_minor) == (
        sku.id,
        "codes",
        40,
        "Acme",
        800,
    )
    assert batch.wrapped_key is not None
    for code in codes:
        assert await stored(rt, code) == StoredCode(
            batch.id, sku.id, batch.warehouse_id, "available", None, code, datetime.date(2027, 6, 30)
        )
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=40, available=40)
    async with rt.db.read() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "batch.imported"))).scalar_one()
    assert (audit.actor, audit.target) == ("test", f"batch:{batch.id}")
    assert audit.after is not None and audit.after["codes"] == 40


async def test_each_file_becomes_its_own_batch_and_stock_adds_up_across_them(rt: Runtime) -> None:
    sku = await given_sku(rt)
    first = await import_file(rt, sku, file_of(*random_codes(7)))
    second = await import_file(rt, sku, file_of(*random_codes(5)))

    assert first.batch_id != second.batch_id
    assert [b.quantity for b in await batches(rt)] == [7, 5]
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=12, available=12)


async def test_codes_go_to_the_named_warehouse_and_stock_is_kept_per_warehouse(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        session.add(Warehouse(code="east", name="East"))
    sku = await given_sku(rt)
    await import_file(rt, sku, file_of(*random_codes(3)))
    await import_file(rt, sku, file_of(*random_codes(4)), meta=importing.BatchMeta(warehouse="east"))

    async with rt.db.read() as session:
        rows = await stock(session, sku_id=sku.id)
    assert rows == [
        Stock(sku.id, "east", imported=4, available=4),
        Stock(sku.id, "main", imported=3, available=3),
    ]


# --- secrets at rest ----------------------------------------------------------------------------


async def test_a_secret_is_stored_sealed_and_its_plaintext_is_nowhere_in_the_database(rt: Runtime) -> None:
    sku = await given_sku(rt)
    pairs = [(f"CARD{n:06d}", secret) for n, secret in enumerate(random_codes(5, length=20))]

    await import_file(rt, sku, file_of(*(f"{card},{secret}" for card, secret in pairs)))

    rows = await raw_rows(rt, "inventory_codes")
    assert len(rows) == 5
    for card_no, secret in pairs:
        assert await places_holding(rt, secret) == []
        # Without encrypt_card_no the card number is kept readable (it is not the secret)...
        assert await places_holding(rt, card_no) == ["inventory_codes.card_no"]
        # ...and the secret still opens, so the test above cannot pass by losing it.
        found = await stored(rt, secret, card_no)
        assert found is not None and found.secret == secret
    for row in rows:
        assert row["card_no_sealed"] is None
        assert isinstance(row["secret_sealed"], bytes)
        # 12-byte nonce + ciphertext + 16-byte tag
        assert len(row["secret_sealed"]) == 12 + 20 + 16


async def test_the_card_number_is_sealed_too_when_the_sku_says_encrypt_card_no(rt: Runtime) -> None:
    sku = await given_sku(rt, encrypt_card_no=True)
    pairs = [(f"CARD{n:06d}", secret) for n, secret in enumerate(random_codes(5))]

    await import_file(rt, sku, file_of(*(f"{card},{secret}" for card, secret in pairs)))

    for row in await raw_rows(rt, "inventory_codes"):
        assert row["card_no"] is None
        assert isinstance(row["card_no_sealed"], bytes)
    for card_no, secret in pairs:
        assert await places_holding(rt, card_no) == []
        assert await places_holding(rt, secret) == []
        found = await stored(rt, secret, card_no)
        assert found is not None and (found.card_no, found.secret) == (card_no, secret)


async def test_a_sealed_secret_moved_to_another_row_does_not_open(rt: Runtime) -> None:
    sku = await given_sku(rt)
    first, second = random_codes(2)
    await import_file(rt, sku, file_of(first, second))
    async with rt.db.read() as session:
        rows = (
            await session.execute(
                select(Code.id, Code.fingerprint, Code.secret_sealed, Batch.wrapped_key)
                .join(Batch, Batch.id == Code.batch_id)
                .order_by(Code.id)
            )
        ).all()
    (id_a, fp_a, sealed_a, key), (id_b, fp_b, sealed_b, _) = rows
    assert key is not None
    box = rt.vault.box(key)
    assert (box.open(sealed_a, fp_a), box.open(sealed_b, fp_b)) == (first, second)

    # Same batch, same data key: only the binding to the row's fingerprint stops the swap.
    async with rt.db.transaction() as session:
        await session.execute(update(Code).where(Code.id == id_a).values(secret_sealed=sealed_b))
        await session.execute(update(Code).where(Code.id == id_b).values(secret_sealed=sealed_a))

    with pytest.raises(KeyMismatch):
        await stored(rt, first)
    with pytest.raises(KeyMismatch):
        await stored(rt, second)


# --- never twice --------------------------------------------------------------------------------


@pytest.mark.parametrize("same_sku", [True, False], ids=["same-sku", "other-sku"])
async def test_a_code_already_in_the_inventory_is_refused_by_line_and_nothing_is_imported(
    rt: Runtime, same_sku: bool
) -> None:
    first_sku = await given_sku(rt)
    existing = random_codes(5)
    await import_file(rt, first_sku, file_of(*existing))
    sku = first_sku if same_sku else await given_sku(rt)

    error = await rejected(rt, sku, file_of(*random_codes(2), existing[3], *random_codes(2)))

    assert problems_of(error) == [(3, "duplicate_code")]
    assert error.details["problem_count"] == 1
    assert "line 3" in error.message
    assert len(await batches(rt)) == 1
    assert await stored(rt, existing[3]) is not None


async def test_a_duplicate_of_the_inventory_is_reported_with_the_other_bad_lines(rt: Runtime) -> None:
    sku = await given_sku(rt)
    existing = random_codes(3)
    await import_file(rt, sku, file_of(*[f"C{n},{code}" for n, code in enumerate(existing)]))

    error = await rejected(
        rt, sku, file_of(f"NEW1,{random_codes(1)[0]}", "C1", "C0," + existing[0], "C2," + existing[2])
    )

    assert problems_of(error) == [(2, "malformed_line"), (3, "duplicate_code"), (4, "duplicate_code")]


async def test_the_same_secret_under_another_card_number_is_another_code(rt: Runtime) -> None:
    sku = await given_sku(rt)
    secret = random_codes(1)[0]
    await import_file(rt, sku, file_of(f"1001,{secret}"))

    await import_file(rt, sku, file_of(f"1002,{secret}"))

    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=2, available=2)


async def test_a_code_repeated_within_a_file_names_both_lines(rt: Runtime) -> None:
    sku = await given_sku(rt)
    a, b, c = random_codes(3)

    error = await rejected(rt, sku, file_of(a, b, a, c, b))

    assert problems_of(error) == [(3, "duplicate_in_file"), (5, "duplicate_in_file")]
    reasons = [p["reason"] for p in error.details["problems"]]
    assert "line 1" in reasons[0]
    assert "line 2" in reasons[1]


@dataclass
class RaceAtCopy:
    """Holds each import just before it stores its codes until the other import gets there too.

    SQLite admits one writer at a time, so there the second import cannot arrive
    before the first commits; the wait is bounded and the first goes on alone.
    """

    arrived: int = 0
    both: asyncio.Event = field(default_factory=asyncio.Event)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        store = importing._Importer.store

        async def store_when_both_have_arrived(*args: Any, **kwargs: Any) -> Any:
            self.arrived += 1
            if self.arrived == 2:
                self.both.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.both.wait(), timeout=0.5)
            return await store(*args, **kwargs)

        monkeypatch.setattr(importing._Importer, "store", store_when_both_have_arrived)


def overlapping_files() -> tuple[list[str], list[str], list[str]]:
    """Two files sharing ten codes (in the same order); returns (first, second, shared)."""
    shared = random_codes(10)
    return [*random_codes(10), *shared], [*shared, *random_codes(15)], shared


async def test_two_imports_racing_with_overlapping_files_import_each_code_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku(rt)
    first, second, shared = overlapping_files()
    race = RaceAtCopy()
    race.install(monkeypatch)

    outcomes = await asyncio.gather(
        import_file(rt, sku, file_of(*first)), import_file(rt, sku, file_of(*second)), return_exceptions=True
    )

    if rt.db.is_postgresql:
        assert race.both.is_set(), "no race: one import committed before the other began to copy"
    results = [o for o in outcomes if isinstance(o, importing.ImportResult)]
    refusals = [o for o in outcomes if isinstance(o, ImportRejected)]
    assert (len(results), len(refusals)) == (1, 1), outcomes
    winner, loser = (first, second) if outcomes[0] is results[0] else (second, first)
    assert_nothing_echoed(refusals[0], file_of(*loser))
    assert [(p["line_no"], p["code"]) for p in refusals[0].details["problems"]] == [
        (loser.index(code) + 1, "duplicate_code") for code in shared
    ]
    assert results[0].imported == len(winner)
    assert len(await batches(rt)) == 1
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=len(winner), available=len(winner))
    for code in loser:
        assert (await stored(rt, code) is not None) == (code in winner)


async def test_two_imports_racing_with_skip_invalid_still_import_each_code_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With skip_invalid the loser either skips the shared lines or, caught mid-copy, is refused whole."""
    sku = await given_sku(rt)
    first, second, shared = overlapping_files()
    RaceAtCopy().install(monkeypatch)

    outcomes = await asyncio.gather(
        import_file(rt, sku, file_of(*first), skip_invalid=True),
        import_file(rt, sku, file_of(*second), skip_invalid=True),
        return_exceptions=True,
    )

    for outcome, codes in zip(outcomes, (first, second), strict=True):
        if isinstance(outcome, ImportRejected):
            assert_nothing_echoed(outcome, file_of(*codes))
            reported = outcome.details["problems"]
        else:
            assert isinstance(outcome, importing.ImportResult), outcome
            reported = outcome.skipped
        assert {p["code"] for p in reported} <= {"duplicate_code"}
        assert {p["line_no"] for p in reported} <= {codes.index(code) + 1 for code in shared}
    imported = sum(o.imported for o in outcomes if isinstance(o, importing.ImportResult))
    everything = set(first) | set(second)
    assert imported == len(everything) or imported in (len(first), len(second))
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=imported, available=imported)
    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Code))).scalar_one() == imported
    for code in shared:
        assert await stored(rt, code) is not None


async def test_two_imports_of_the_very_same_file_at_once_import_it_once(rt: Runtime) -> None:
    sku = await given_sku(rt)
    codes = random_codes(30)

    outcomes = await asyncio.gather(
        import_file(rt, sku, file_of(*codes)), import_file(rt, sku, file_of(*codes)), return_exceptions=True
    )

    kinds = sorted(type(o).__name__ for o in outcomes)
    assert kinds == ["ImportRejected", "ImportResult"], outcomes
    refusal = next(o for o in outcomes if isinstance(o, ImportRejected))
    assert_nothing_echoed(refusal, file_of(*codes))
    assert refusal.details["problem_count"] == 30
    assert {p["code"] for p in refusal.details["problems"]} == {"duplicate_code"}
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=30, available=30)


# --- bad lines, bad files -----------------------------------------------------------------------


async def test_codes_breaking_the_skus_rule_are_refused_by_line_with_the_reason(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    good = random_codes(2)

    error = await rejected(rt, sku, file_of(good[0], "SHORT7CODE", good[1], "abcdefghjkmnpqrs", "TOOLONG" * 3))

    assert problems_of(error) == [(2, "format_rule"), (4, "format_rule"), (5, "format_rule")]
    reasons = [p["reason"] for p in error.details["problems"]]
    assert reasons == [
        "secret has 10 characters, the rule needs exactly 16",
        "secret has characters outside the alphabet",
        "secret has 21 characters, the rule needs exactly 16",
    ]


async def test_a_card_number_breaking_the_rule_is_refused_without_echoing_it(rt: Runtime) -> None:
    """Swapped columns put the secret where the card number belongs: the reason must not show it."""
    sku = await given_sku(rt, rule=CodeRule(card_no_regex=r"G\d{8}", card_no_required=True))
    secret = random_codes(1)[0]

    error = await rejected(rt, sku, file_of("G00000001," + random_codes(1)[0], f"{secret},G00000002"))

    assert problems_of(error) == [(2, "format_rule")]
    assert secret not in error.message
    assert secret not in json.dumps(error.details)


async def test_malformed_lines_are_refused_by_line_and_kind(rt: Runtime) -> None:
    sku = await given_sku(rt)
    a, b, c, d = random_codes(4)

    error = await rejected(rt, sku, file_of(f"1001,{a}", "1002", f"1003,{b},{c},extra", "1004,", f"1005,{d}"))

    assert problems_of(error) == [(2, "malformed_line"), (3, "too_many_fields"), (4, "empty_secret")]
    assert error.details["problem_count"] == 3


async def test_an_expiry_that_is_not_a_date_is_refused_without_echoing_the_value(rt: Runtime) -> None:
    sku = await given_sku(rt)
    secret, shifted = random_codes(2)

    error = await rejected(rt, sku, file_of("卡号,卡密,有效期", f"1001,{secret},2027-02-30", f"1002,X,{shifted}"))

    assert problems_of(error) == [(2, "bad_date"), (3, "bad_date")]


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n\n", b"  \n\t\n \r\n", "卡号,卡密\n".encode(), b",,,\n,\n"],
    ids=["empty", "newlines", "whitespace", "header-only", "separators-only"],
)
async def test_a_file_without_codes_is_refused_as_a_whole(rt: Runtime, data: bytes) -> None:
    sku = await given_sku(rt)
    before = await snapshot(rt)

    with pytest.raises(BadInput) as caught:
        await import_file(rt, sku, data)

    assert caught.value.code in ("import_file_invalid", "import_rejected")
    assert "no codes" in caught.value.message
    assert await snapshot(rt) == before


@pytest.mark.parametrize(
    "data",
    [
        "ABCD-0001\nABCD-0002\n".encode("utf-16"),
        "ABCD-0001\nABCD-0002\n".encode("utf-16-le"),
        "ABCD-0001\nABCD-0002\n".encode("utf-32"),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
    ids=["utf-16", "utf-16-le", "utf-32", "binary"],
)
async def test_a_file_in_an_unreadable_encoding_is_refused_as_a_whole(rt: Runtime, data: bytes) -> None:
    sku = await given_sku(rt)
    before = await snapshot(rt)

    with pytest.raises(ImportFileError) as caught:
        await import_file(rt, sku, data)

    assert caught.value.code == "import_file_invalid"
    assert "UTF-8" in caught.value.message
    assert await snapshot(rt) == before


async def test_a_gbk_file_with_chinese_codes_is_read_and_stored_exactly(rt: Runtime) -> None:
    sku = await given_sku(rt)
    pairs = [
        ("会员卡0001", "兑换码甲乙丙丁" + random_codes(1)[0]),
        ("会员卡0002", "兑换码戊己庚辛" + random_codes(1)[0]),
    ]

    result = await import_file(rt, sku, file_of("卡号,卡密", *(f"{c},{s}" for c, s in pairs), encoding="gbk"))

    assert (result.encoding, result.layout, result.imported) == ("gb18030", "csv", 2)
    for card_no, secret in pairs:
        found = await stored(rt, secret, card_no)
        assert found is not None and (found.card_no, found.secret) == (card_no, secret)


async def test_a_utf8_bom_is_not_part_of_the_first_code(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    codes = random_codes(3)

    result = await import_file(rt, sku, b"\xef\xbb\xbf" + file_of(*codes))

    assert (result.encoding, result.imported) == ("utf-8-sig", 3)
    assert await stored(rt, codes[0]) is not None
    assert await stored(rt, "\ufeff" + codes[0]) is None


async def test_a_csv_with_a_chinese_header_takes_each_rows_expiry_and_the_batch_expiry_as_default(rt: Runtime) -> None:
    sku = await given_sku(rt)
    a, b, c = random_codes(3)
    meta = importing.BatchMeta(expires_on=datetime.date(2028, 1, 1))

    result = await import_file(
        rt,
        sku,
        file_of("卡号，卡密，有效期", f"G1，{a}，2027-03-31", f"G2，{b}，", f"G3，{c}，2027/4/5"),
        meta=meta,
    )

    assert (result.layout, result.imported) == ("csv", 3)
    expiries = [
        (found.card_no, found.expires_on)
        for found in [await stored(rt, s, n) for n, s in [("G1", a), ("G2", b), ("G3", c)]]
        if found
    ]
    assert expiries == [
        ("G1", datetime.date(2027, 3, 31)),
        ("G2", datetime.date(2028, 1, 1)),
        ("G3", datetime.date(2027, 4, 5)),
    ]


# --- memory: bounded whatever the file ----------------------------------------------------------


def all_invalid_file(size: int) -> bytes:
    """`size` bytes of distinct lines that all break a 16-upper-case rule: every line is a problem."""
    lines = (f"bad-{n:012d}" for n in range(size // 17 + 1))
    return "\n".join(lines).encode()[:size]


async def test_an_all_invalid_file_is_refused_in_memory_far_below_its_size(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a large file of bad lines. Its problems are counted, not kept; its lines are not held.

    Memory follows the chunk size, not the file: with chunks of 5,000 codes (instead of
    50,000) the whole import of an 8 MiB file peaks under half the file's size. Before
    streaming, an import held every line and every problem: about 25 times the file's size.
    """
    monkeypatch.setattr(importing, "COPY_CHUNK", 5_000)
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    data = all_invalid_file(8 * 2**20)
    lines = data.count(b"\n") + 1
    before = await snapshot(rt)
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(ImportRejected) as caught:
            await import_file(rt, sku, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < len(data) // 2, f"peak {peak / 2**20:.1f} MiB for an {len(data) / 2**20:.0f} MiB file"
    assert caught.value.details["problem_count"] == lines
    problems = caught.value.details["problems"]
    assert [p["line_no"] for p in problems] == list(range(1, 201))  # the first 200
    assert await snapshot(rt) == before


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files read 7 bytes and stored 3 codes at a time, so a few lines cross every chunk boundary."""
    monkeypatch.setattr(parsing, "READ_SIZE", 7)
    monkeypatch.setattr(importing, "COPY_CHUNK", 3)


@pytest.mark.usefixtures("small_chunks")
async def test_duplicates_are_found_across_chunks_naming_the_first_line(rt: Runtime) -> None:
    sku = await given_sku(rt)
    existing = random_codes(2)
    await import_file(rt, sku, file_of(*existing))
    a, b, c, d = random_codes(4)
    lines = [a, b, c, existing[1], d, a, a, existing[1], c, b]

    error = await rejected(rt, sku, file_of(*lines))

    assert problems_of(error) == [
        (4, "duplicate_code"),
        (6, "duplicate_in_file"),
        (7, "duplicate_in_file"),
        (8, "duplicate_in_file"),
        (9, "duplicate_in_file"),
        (10, "duplicate_in_file"),
    ]
    reasons = [p["reason"] for p in error.details["problems"]]
    assert reasons[1:] == [f"the same code already appears on line {n}" for n in (1, 1, 4, 3, 2)]


@pytest.mark.usefixtures("small_chunks")
async def test_skip_invalid_across_chunks_stores_each_good_line_once(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    existing = random_codes(1)[0]
    await import_file(rt, sku, file_of(existing))
    good = random_codes(6)
    lines = [good[0], "bad", good[1], existing, good[2], good[0], good[3], "x,y", good[4], good[1], good[5]]

    result = await import_file(rt, sku, file_of(*lines), skip_invalid=True)

    assert result.imported == 6
    assert skipped_of(result) == [
        (2, "format_rule"),
        (4, "duplicate_code"),
        (6, "duplicate_in_file"),
        (8, "malformed_line"),
        (10, "duplicate_in_file"),
    ]
    assert result.skipped_total == 5
    assert [b.quantity for b in await batches(rt)] == [1, 6]
    for code in good:
        found = await stored(rt, code)
        assert found is not None and found.batch_id == result.batch_id
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=7, available=7)


@pytest.mark.usefixtures("small_chunks")
async def test_a_clean_file_read_in_small_chunks_is_stored_whole_with_progress(rt: Runtime) -> None:
    sku = await given_sku(rt)
    codes = random_codes(10)
    data = b"\xef\xbb\xbf" + "\r\n".join(f"C{n},{code}" for n, code in enumerate(codes)).encode()
    steps: list[importing.Advance] = []

    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        result = await importing.import_file(
            rt.db, session, rt.vault, target, data, importing.BatchMeta(), actor="test", progress=steps.append
        )

    assert (result.imported, result.encoding, result.layout) == (10, "utf-8-sig", "pair")
    assert [step.codes for step in steps] == [3, 6, 9, 10]
    assert {step.phase for step in steps} == {"storing"}
    assert steps[-1].bytes_read == len(data)
    for n, code in enumerate(codes):
        assert await stored(rt, code, f"C{n}") is not None


async def test_many_skipped_lines_are_counted_beyond_the_listed_ones(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    good = random_codes(3)

    result = await import_file(rt, sku, file_of(*good, *(f"bad{n}" for n in range(500))), skip_invalid=True)

    assert result.imported == 3
    assert result.skipped_total == 500
    assert [line_no for line_no, _ in skipped_of(result)] == list(range(4, 4 + importing.MAX_REPORTED_PROBLEMS))


async def test_a_line_that_does_not_decode_late_in_the_file_refuses_it_naming_the_line(rt: Runtime) -> None:
    sku = await given_sku(rt)
    # UTF-8 from the first line; the GBK line comes chunks later, after the encoding was chosen.
    data = file_of("兑换码" + random_codes(1)[0], *random_codes(30_000)) + "\n卡密甲乙\n".encode("gbk")
    before = await snapshot(rt)

    with pytest.raises(ImportFileError) as caught:
        await import_file(rt, sku, data)

    assert caught.value.details["line_no"] == 30_002
    assert "line 30002 is not valid utf-8" in caught.value.message
    assert await snapshot(rt) == before


# --- all or nothing, or skip the bad lines ------------------------------------------------------


async def test_by_default_one_bad_line_refuses_the_whole_file(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    good = random_codes(5)

    error = await rejected(rt, sku, file_of(*good[:2], "bad", *good[2:]))

    assert problems_of(error) == [(3, "format_rule")]
    for code in good:
        assert await stored(rt, code) is None


async def test_skip_invalid_imports_the_good_lines_and_reports_the_bad_ones(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    existing = random_codes(1)[0]
    await import_file(rt, sku, file_of(existing))
    good = random_codes(4)
    data = file_of(good[0], "bad", good[1], existing, good[2], good[0], "x,y", good[3])

    result = await import_file(rt, sku, data, skip_invalid=True)

    assert result.imported == 4
    assert skipped_of(result) == [
        (2, "format_rule"),
        (4, "duplicate_code"),
        (6, "duplicate_in_file"),
        (7, "malformed_line"),
    ]
    assert not [value for value in values_in(data) if value in json.dumps(result.skipped, ensure_ascii=False)]
    assert [b.quantity for b in await batches(rt)] == [1, 4]
    for code in good:
        found = await stored(rt, code)
        assert found is not None and found.batch_id == result.batch_id
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=5, available=5)


async def test_skip_invalid_with_no_good_line_left_refuses_the_file(rt: Runtime) -> None:
    sku = await given_sku(rt, rule=SIXTEEN_UPPER)
    existing = random_codes(1)[0]
    await import_file(rt, sku, file_of(existing))

    error = await rejected(rt, sku, file_of("bad", existing), skip_invalid=True)

    assert problems_of(error) == [(1, "format_rule"), (2, "duplicate_code")]


async def test_an_unknown_warehouse_is_refused_and_nothing_is_imported(rt: Runtime) -> None:
    sku = await given_sku(rt)
    before = await snapshot(rt)

    with pytest.raises(WarehouseNotFound) as caught:
        await import_file(rt, sku, file_of(*random_codes(3)), meta=importing.BatchMeta(warehouse="nowhere"))

    assert (caught.value.status, caught.value.code) == (404, "warehouse_not_found")
    assert await snapshot(rt) == before


def test_a_negative_unit_cost_is_refused() -> None:
    with pytest.raises(BadInput, match="negative"):
        importing.BatchMeta(unit_cost_minor=-1)


async def test_a_code_file_is_refused_by_a_segment_sku(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, start=1, end=10)
    before = await snapshot(rt)

    with pytest.raises(WrongStockKind) as caught:
        await import_file(rt, sku, file_of(*random_codes(3)))

    assert (caught.value.status, caught.value.code) == (400, "wrong_stock_kind")
    assert await snapshot(rt) == before


async def test_a_segment_is_refused_by_a_code_sku(rt: Runtime) -> None:
    sku = await given_sku(rt)
    before = await snapshot(rt)

    with pytest.raises(WrongStockKind) as caught:
        await add_segment(rt, sku, start=1, end=10)

    assert caught.value.code == "wrong_stock_kind"
    assert await snapshot(rt) == before


# --- segments -----------------------------------------------------------------------------------


async def test_a_segment_becomes_one_batch_with_every_serial_available(rt: Runtime) -> None:
    sku = await given_sku(rt, stock_kind="segment")

    batch = await add_segment(rt, sku, prefix="GC", width=8, start=10_000_001, end=10_005_000)

    assert (batch.kind, batch.quantity, batch.wrapped_key) == ("segment", 5000, None)
    async with rt.db.read() as session:
        segment = (await session.execute(select(Segment))).scalar_one()
        ranges = (await session.execute(select(SegmentRange))).scalars().all()
    assert (segment.prefix, segment.width, segment.start_serial, segment.end_serial) == (
        "GC",
        8,
        10_000_001,
        10_005_000,
    )
    assert [(r.first_serial, r.last_serial, r.status) for r in ranges] == [(10_000_001, 10_005_000, "available")]
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=5000, available=5000)


@pytest.mark.parametrize(
    ("start", "end"),
    [(100, 199), (50, 100), (199, 250), (120, 130), (0, 1000), (150, 150)],
    ids=["same", "overlaps-start", "overlaps-end", "inside", "around", "one-serial"],
)
async def test_a_segment_overlapping_another_is_refused(rt: Runtime, start: int, end: int) -> None:
    sku = await given_segment_sku(rt, prefix="GC", width=8, start=100, end=199)
    other_sku = await given_sku(rt, stock_kind="segment")
    before = await snapshot(rt)

    for target in (sku, other_sku):
        with pytest.raises(SegmentOverlap) as caught:
            await add_segment(rt, target, prefix="GC", width=8, start=start, end=end)
        assert (caught.value.status, caught.value.code) == (409, "segment_overlap")
        assert (caught.value.details["start"], caught.value.details["end"]) == (100, 199)

    assert await snapshot(rt) == before


async def test_segments_that_touch_but_do_not_overlap_are_both_taken(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, prefix="GC", width=8, start=100, end=199)

    await add_segment(rt, sku, prefix="GC", width=8, start=200, end=299)
    await add_segment(rt, sku, prefix="GC", width=8, start=0, end=99)

    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=300, available=300)


@pytest.mark.parametrize(
    ("prefix", "width"),
    [("GD", 8), ("", 8), ("GC", 9), ("gc", 8)],
    ids=["other-prefix", "no-prefix", "wider", "lowercase"],
)
async def test_the_same_serial_numbers_under_another_serial_form_are_another_segment(
    rt: Runtime, prefix: str, width: int
) -> None:
    sku = await given_segment_sku(rt, prefix="GC", width=8, start=100, end=199)

    await add_segment(rt, sku, prefix=prefix, width=width, start=100, end=199)

    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=200, available=200)


@pytest.mark.parametrize(
    ("stored", "added"),
    [
        (("GC", 8, 100, 199), ("GC0", 7, 150, 150)),
        (("GC", 8, 100, 199), ("GC00000", 3, 0, 999)),
        (("GC", 8, 100, 199), ("GC0000", 4, 199, 5000)),
        (("GC1", 7, 0, 99), ("GC", 8, 10_000_050, 10_000_060)),
        (("GC000", 5, 0, 99_999), ("GC", 8, 99_999, 100_000)),
        (("7", 3, 0, 999), ("", 4, 7999, 8000)),
    ],
    ids=["one-digit-moved", "short-serials", "overlapping-end", "stored-longer", "stored-longer-edge", "no-prefix"],
)
async def test_a_segment_spelling_the_same_serials_in_another_form_is_refused(
    rt: Runtime, stored: tuple[str, int, int, int], added: tuple[str, int, int, int]
) -> None:
    """GC + 00000150 and GC0 + 0000150 are both the card GC00000150: it must not be sold twice."""
    prefix, width, start, end = stored
    sku = await given_segment_sku(rt, prefix=prefix, width=width, start=start, end=end)
    before = await snapshot(rt)
    prefix, width, start, end = added

    with pytest.raises(SegmentOverlap):
        await add_segment(rt, sku, prefix=prefix, width=width, start=start, end=end)

    assert await snapshot(rt) == before


async def test_a_longer_prefix_with_serials_outside_the_existing_range_is_taken(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, prefix="GC", width=8, start=100, end=199)

    await add_segment(rt, sku, prefix="GC0", width=7, start=200, end=299)  # GC00000200–GC00000299
    await add_segment(rt, sku, prefix="GC1", width=7, start=100, end=199)  # GC10000100–GC10000199
    await add_segment(rt, sku, prefix="GC", width=8, start=10_000_000, end=10_000_099)  # just below GC1's
    await add_segment(rt, sku, prefix="GCX", width=7, start=100, end=199)  # not digits: never the same

    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=500, available=500)


@pytest.mark.parametrize(
    ("prefix", "width", "start", "end"),
    [
        ("GC", 0, 0, 0),
        ("GC", 19, 1, 2),
        ("GC", 8, -1, 5),
        ("GC", 8, 10, 9),
        ("GC", 3, 0, 1000),
        ("GC", 2, 100, 100),
        ("G C", 8, 1, 2),
        ("礼品", 8, 1, 2),
        ("G/C", 8, 1, 2),
        ("P" * 33, 8, 1, 2),
    ],
    ids=[
        "width-0",
        "width-19",
        "negative-start",
        "end-before-start",
        "end-wider-than-width",
        "start-wider-than-width",
        "space-in-prefix",
        "non-ascii-prefix",
        "slash-in-prefix",
        "prefix-too-long",
    ],
)
async def test_a_segment_with_an_impossible_range_or_prefix_is_refused(
    rt: Runtime, prefix: str, width: int, start: int, end: int
) -> None:
    sku = await given_sku(rt, stock_kind="segment")
    before = await snapshot(rt)

    with pytest.raises(BadInput) as caught:
        await add_segment(rt, sku, prefix=prefix, width=width, start=start, end=end)

    assert (caught.value.status, caught.value.code) == (400, "bad_input")
    assert await snapshot(rt) == before


async def test_the_widest_segment_is_taken(rt: Runtime) -> None:
    sku = await given_sku(rt, stock_kind="segment")

    batch = await add_segment(rt, sku, prefix="", width=18, start=10**18 - 5, end=10**18 - 1)

    assert batch.quantity == 5


async def test_two_overlapping_segments_added_at_once_are_taken_once(rt: Runtime) -> None:
    sku = await given_sku(rt, stock_kind="segment")
    adds: list[Callable[[], Awaitable[Batch]]] = [
        lambda: add_segment(rt, sku, prefix="GC", width=8, start=1, end=1000),
        lambda: add_segment(rt, sku, prefix="GC", width=8, start=500, end=1500),
        lambda: add_segment(rt, sku, prefix="GC0", width=7, start=900, end=950),
    ]

    outcomes = await asyncio.gather(*(add() for add in adds), return_exceptions=True)

    taken = [o for o in outcomes if isinstance(o, Batch)]
    assert len(taken) == 1, outcomes
    assert all(isinstance(o, SegmentOverlap) for o in outcomes if o not in taken), outcomes
    assert await stock_of(rt, sku) == Stock(sku.id, "main", imported=taken[0].quantity, available=taken[0].quantity)
