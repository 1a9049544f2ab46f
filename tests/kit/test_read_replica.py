"""Reads that may be a little old go to the read replica only while it is fresh enough, else to the primary.

These tests cover the refusals and the fall-backs on any database; the replica proper (a streaming
standby, its replay paused past the bound and resumed) is proven in tests/operations/test_cluster.py
against the topology of deploy/cluster/.
"""

from pathlib import Path

import pytest
from sqlalchemy import text

from kaquan.kit.db import BadDatabaseUrl, Database


async def test_without_a_replica_stale_reads_run_on_the_primary(db: Database) -> None:
    async with db.read(stale_ok=True) as session:
        assert await session.scalar(text("SELECT 1")) == 1
    assert db.replica is None


def test_a_replica_needs_a_postgresql_primary(tmp_path: Path) -> None:
    with pytest.raises(BadDatabaseUrl, match="PostgreSQL primary"):
        Database(f"sqlite:///{tmp_path / 'k.db'}", read_url="postgresql://postgres@127.0.0.1:5432/test")


def test_the_replica_must_be_postgresql() -> None:
    with pytest.raises(BadDatabaseUrl, match="read replica must be PostgreSQL"):
        Database("postgresql://postgres@127.0.0.1:5432/test", read_url="sqlite:///replica.db")


async def test_an_unreachable_replica_is_not_used_and_reads_still_answer(db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("a read replica is a PostgreSQL setup")
    primary_url = db.engine.url.render_as_string(hide_password=False)
    unreachable = primary_url.replace(f":{db.engine.url.port}/", ":1/")
    reading = Database(primary_url, read_url=unreachable, read_max_lag_s=5)
    try:
        assert reading.replica is not None
        assert await reading.replica.lag_s() is None
        async with reading.read(stale_ok=True) as session:
            assert await session.scalar(text("SELECT NOT pg_is_in_recovery()")) is True
    finally:
        await reading.dispose()


async def test_a_server_that_is_not_a_standby_is_not_taken_for_a_replica(db: Database) -> None:
    """A promoted replica no longer follows the primary: reading it could be stale for ever."""
    if not db.is_postgresql:
        pytest.skip("a read replica is a PostgreSQL setup")
    url = db.engine.url.render_as_string(hide_password=False)
    reading = Database(url, read_url=url, read_max_lag_s=5)
    try:
        assert reading.replica is not None
        assert await reading.replica.lag_s() is None
        assert await reading.replica.fresh() is False
    finally:
        await reading.dispose()
