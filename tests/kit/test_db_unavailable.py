"""A database that goes away mid-request (a restart, a failover) is an honest 503 `busy`, never a 500."""

import pytest
from sqlalchemy import text

from kaquan.kit.db import Database, Unavailable


async def test_a_connection_the_server_terminated_is_answered_busy_and_the_next_transaction_works(
    db: Database,
) -> None:
    if not db.is_postgresql:
        pytest.skip("an embedded SQLite database cannot go away")
    other = Database(db.engine.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(Unavailable) as refused:
            async with db.transaction() as session:
                pid = await session.scalar(text("SELECT pg_backend_pid()"))
                async with other.engine.connect() as admin:
                    await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await session.execute(text("SELECT 1"))

        assert (refused.value.status, refused.value.code, refused.value.retry_after) == (503, "busy", 2)
        async with db.transaction() as session:
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await other.dispose()


async def test_a_server_that_refuses_connections_is_answered_busy() -> None:
    unreachable = Database("postgresql://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(Unavailable):
            async with unreachable.read() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await unreachable.dispose()
