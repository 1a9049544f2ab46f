"""The audit trail is one hash chain: concurrent writers never fork it, and any tampering is found."""

import asyncio
import itertools

import pytest
from sqlalchemy import delete, func, insert, select, update

from kaquan.audit import service as audit
from kaquan.audit.models import AuditEntry, AuditHead
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Busy


async def given_entries(db: Database, count: int) -> None:
    for n in range(count):
        async with db.transaction() as session:
            await audit.record(
                session, f"admin-{n % 3}", "sku.updated", target=f"sku:{n}", before={"price": n}, after={"price": n + 1}
            )


async def check(db: Database) -> audit.ChainCheck:
    async with db.read() as session:
        return await audit.verify(session)


async def chain(db: Database) -> list[AuditEntry]:
    async with db.read() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_each_entry_carries_the_previous_entrys_hash(db: Database) -> None:
    await given_entries(db, 5)

    entries = await chain(db)

    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
    assert all(audit.hash_of(e) == e.hash for e in entries)
    result = await check(db)
    assert result.ok and result.checked == 5 and result.head_hash == entries[-1].hash


async def test_an_empty_trail_verifies(db: Database) -> None:
    assert (await check(db)).ok


async def test_entries_of_one_transaction_chain_in_order_and_vanish_with_a_rollback(db: Database) -> None:
    async with db.transaction() as session:
        await audit.record(session, "a", "x.one", target="t:1")
        await audit.record(session, "a", "x.two", target="t:2")
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await audit.record(session, "a", "x.three", target="t:3")
            raise RuntimeError("the change failed")
    async with db.transaction() as session:
        await audit.record(session, "a", "x.four", target="t:4")

    assert [(e.id, e.action) for e in await chain(db)] == [(1, "x.one"), (2, "x.two"), (3, "x.four")]
    assert (await check(db)).ok


async def _record_concurrently(db: Database, writers: int, *, retries: int = 0) -> list[BaseException | None]:
    async def one(n: int) -> None:
        for attempt in range(retries + 1):
            try:
                async with db.transaction() as session:
                    await audit.record(session, f"writer-{n}", "stock.changed", target=f"sku:{n}", after={"n": n})
                    await asyncio.sleep(0.005)  # keep the transaction open so the writers overlap
                return
            except Busy:
                # the honest "try again" a loaded server gives when the chain lock queue outlasts lock_timeout
                if attempt == retries:
                    raise

    results = await asyncio.gather(*(one(n) for n in range(writers)), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


async def test_without_serialized_appends_concurrent_writers_collide(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protection switched off: writers read the same chain end, so the race is real."""

    async def no_lock(*_args: object) -> None:
        return None

    monkeypatch.setattr(audit, "serialize_on", no_lock)
    with db.unprotected():  # SQLite: plain BEGIN instead of BEGIN IMMEDIATE
        failures = [r for r in await _record_concurrently(db, 20) if r is not None]

    assert failures, "without the chain lock, concurrent appends must collide"


async def test_many_concurrent_writers_keep_the_chain_linear(db: Database) -> None:
    results = await _record_concurrently(db, 60, retries=5)

    assert [r for r in results if r is not None] == []
    entries = await chain(db)
    assert [e.id for e in entries] == list(range(1, 61))
    assert sorted(e.actor for e in entries) == sorted(f"writer-{n}" for n in range(60))
    assert len({e.prev_hash for e in entries}) == 60  # no two entries claim the same predecessor
    assert (await check(db)).ok


# --- tampering ----------------------------------------------------------------------------------


async def tamper(db: Database, *statements: object) -> None:
    async with db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)  # type: ignore[call-overload]


async def test_an_edited_summary_is_found_at_that_entry(db: Database) -> None:
    await given_entries(db, 6)

    await tamper(db, update(AuditEntry).where(AuditEntry.id == 4).values(after={"price": 1}))

    result = await check(db)
    assert (result.bad_id, result.checked) == (4, 3)
    assert "edited" in (result.reason or "")


async def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    await given_entries(db, 6)
    entry = (await chain(db))[2]
    entry.actor = "someone-else"
    forged = audit.hash_of(entry)

    await tamper(db, update(AuditEntry).where(AuditEntry.id == 3).values(actor="someone-else", hash=forged))

    result = await check(db)
    assert result.bad_id == 4
    assert "does not follow entry 3" in (result.reason or "")


async def test_a_deleted_entry_is_found(db: Database) -> None:
    await given_entries(db, 6)

    await tamper(db, delete(AuditEntry).where(AuditEntry.id == 3))

    result = await check(db)
    assert result.bad_id == 4
    assert "entry 3 before it are missing" in (result.reason or "")


async def test_entries_cut_off_the_end_are_found(db: Database) -> None:
    await given_entries(db, 6)

    await tamper(db, delete(AuditEntry).where(AuditEntry.id >= 5))

    result = await check(db)
    assert result.bad_id == 5
    assert "deleted from the end" in (result.reason or "")


async def test_a_forged_entry_appended_behind_the_head_is_found(db: Database) -> None:
    await given_entries(db, 3)
    last = (await chain(db))[-1]
    forged = AuditEntry(
        id=4, at=clock.now(), actor="ghost", action="sku.updated", target="sku:9", before=None, after=None, ip=None
    )
    forged.prev_hash = last.hash
    forged.hash = audit.hash_of(forged)
    values = {c.name: getattr(forged, c.key) for c in AuditEntry.__table__.columns}

    await tamper(db, insert(AuditEntry).values(values))

    result = await check(db)
    assert result.bad_id == 4
    assert "inserted" in (result.reason or "")


async def test_a_forged_entry_squeezed_in_is_found(db: Database) -> None:
    await given_entries(db, 4)
    # Make room after entry 2 by moving the later entries up, then put a forged one in the gap.
    await tamper(
        db,
        update(AuditEntry).where(AuditEntry.id == 4).values(id=5),
        update(AuditEntry).where(AuditEntry.id == 3).values(id=4),
    )
    entries = await chain(db)
    forged = AuditEntry(id=3, at=clock.now(), actor="ghost", action="x", target="y", before=None, after=None, ip=None)
    forged.prev_hash = entries[1].hash
    forged.hash = audit.hash_of(forged)
    values = {c.name: getattr(forged, c.key) for c in AuditEntry.__table__.columns}
    await tamper(db, insert(AuditEntry).values(values), update(AuditHead).values(last_id=5))

    result = await check(db)
    assert result.bad_id == 4
    assert result.checked == 3


async def test_reordered_entries_are_found(db: Database) -> None:
    await given_entries(db, 5)
    second, third = (await chain(db))[1:3]

    await tamper(
        db,
        update(AuditEntry).where(AuditEntry.id == 2).values(id=99),
        update(AuditEntry).where(AuditEntry.id == 3).values(id=2),
        update(AuditEntry).where(AuditEntry.id == 99).values(id=3),
    )

    assert {(e.id, e.hash) for e in await chain(db)} >= {(2, third.hash), (3, second.hash)}
    result = await check(db)
    assert result.bad_id == 2
    assert result.checked == 1


async def test_verifying_changes_nothing(db: Database) -> None:
    await given_entries(db, 3)
    await tamper(db, update(AuditEntry).where(AuditEntry.id == 2).values(target="sku:other"))
    before = await chain(db)

    assert not (await check(db)).ok
    assert [(e.id, e.target, e.hash) for e in await chain(db)] == [(e.id, e.target, e.hash) for e in before]
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one() == 3
