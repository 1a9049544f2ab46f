"""Readiness: a migrated database, a reachable Redis and a recent worker pass; each failure named, none hanging."""

from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import text

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.operations import beat, check_readiness

MINUTE = timedelta(minutes=1)


async def test_a_migrated_database_with_a_worker_that_just_ran_is_ready(db: Database) -> None:
    await beat(db)

    readiness = await check_readiness(db, None, worker_max_age=MINUTE)

    assert readiness.ready
    assert {check.name for check in readiness.checks} == {"migrations", "worker"}


async def test_no_worker_pass_yet_or_an_old_one_is_not_ready(db: Database) -> None:
    never = await check_readiness(db, None, worker_max_age=MINUTE)
    assert not never.ready
    assert [(c.name, c.detail) for c in never.checks if not c.ok] == [("worker", "no worker has run yet")]

    await beat(db)
    clock.travel(61)
    stale = await check_readiness(db, None, worker_max_age=MINUTE)
    assert [c.name for c in stale.checks if not c.ok] == ["worker"]

    await beat(db)  # the worker is back: one row, stamped again
    assert (await check_readiness(db, None, worker_max_age=MINUTE)).ready
    async with db.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM worker_heartbeats")) == 1


async def test_the_worker_can_be_left_out_of_readiness(db: Database) -> None:
    readiness = await check_readiness(db, None, worker_max_age=None)

    assert readiness.ready
    assert [check.name for check in readiness.checks] == ["migrations"]


async def test_a_database_behind_the_codes_migrations_is_not_ready(db: Database) -> None:
    async with db.read() as session:
        head = await session.scalar(text("SELECT version_num FROM alembic_version"))
    async with db.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '7e2c90b4a1d8'"))
    try:
        readiness = await check_readiness(db, None, worker_max_age=None)
    finally:  # the migrated database is shared by the tests that follow
        async with db.transaction() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})

    assert not readiness.ready
    (failed,) = readiness.checks
    assert failed.name == "migrations"
    assert "7e2c90b4a1d8" in failed.detail


async def test_an_unreachable_redis_is_named_without_hanging(db: Database) -> None:
    nowhere = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        readiness = await check_readiness(db, nowhere, worker_max_age=None)
    finally:
        await nowhere.aclose()

    assert not readiness.ready
    assert [(c.name, c.ok) for c in readiness.checks] == [("migrations", True), ("redis", False)]
    assert readiness.checks[1].detail.startswith("unreachable (")


async def test_an_unreachable_database_is_not_ready(tmp_path: object) -> None:
    gone = Database("postgresql://nobody@127.0.0.1:1/none")
    try:
        readiness = await check_readiness(gone, None, worker_max_age=MINUTE)
    finally:
        await gone.engine.dispose()

    assert not readiness.ready
    assert all(not check.ok for check in readiness.checks)
    assert "password" not in " ".join(check.detail for check in readiness.checks)
