"""Set work over many rows inside one transaction: scratch tables, and the planner's and memory's settings for it.

Imports, matching and bulk stores handle a million rows at a time. These helpers keep that work in the
database and tune the transaction for it; each says what it does on PostgreSQL and what on SQLite.
"""

from typing import Any

from sqlalchemy import Column, Index, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit.db import is_postgresql_session


async def scratch_table(session: AsyncSession, name: str, *columns: Column[Any] | Index) -> Table:
    """A table for set work too big to hold in Python, private to the session's transaction; drop it when done.

    PostgreSQL: a temporary table, dropped at commit at the latest, spilling to disk
    past `temp_buffers`. SQLite: temporary tables live in memory here
    (`temp_store=MEMORY`), so this is a plain table in the database file, which only
    this transaction sees (it holds the write lock) and a rollback removes.
    """
    table = Table(
        name,
        MetaData(),
        *columns,
        prefixes=["TEMPORARY"] if is_postgresql_session(session) else [],
        postgresql_on_commit="DROP",
    )
    connection = await session.connection()
    await connection.run_sync(table.create)
    return table


async def index_scratch_table(session: AsyncSession, table: Table, name: str, *columns: str) -> None:
    """Index a filled scratch table: one sort, instead of a million index insertions while it fills.

    PostgreSQL keeps temporary tables in the session's own small buffer pool
    (`temp_buffers`, 8 MB by default): an index kept up row by row over a
    million random keys thrashes it, while building it afterwards writes it once.
    """
    index = Index(name, *(table.c[column] for column in columns))
    connection = await session.connection()
    await connection.run_sync(index.create)


async def drop_scratch_table(session: AsyncSession, table: Table) -> None:
    connection = await session.connection()
    await connection.run_sync(table.drop)


async def refresh_statistics(session: AsyncSession, table: Table) -> None:
    """Have the planner sample `table` again now, inside the transaction (after a bulk load of many rows).

    PostgreSQL's autovacuum analyzes a table some time after it grew; until then
    a query planned right after a million-row COPY believes the table is nearly
    empty and picks nested loops. Both dialects take `ANALYZE <table>`.
    """
    await session.execute(text(f"ANALYZE {table.name}"))
    await summarize_block_ranges(session, table)


async def summarize_block_ranges(session: AsyncSession, table: Table) -> None:
    """Have `table`'s block-range (BRIN) indexes describe the rows just written (PostgreSQL; else nothing).

    A block range nobody summarized yet matches every search of the index: autovacuum summarizes new
    ranges some time later, and until then a probe for one day of a table that just took a million rows
    reads all of them (0.6 s a probe on this project's reference machine).
    """
    if not is_postgresql_session(session):
        return
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        if index.dialect_options["postgresql"]["using"] == "brin":
            await session.execute(
                text("SELECT brin_summarize_new_values(CAST(:name AS regclass))"), {"name": index.name}
            )


async def allow_large_sorts(session: AsyncSession, megabytes: int) -> None:
    """Let this transaction's sorts and hashes use up to `megabytes` each before they spill to disk.

    For set work over a million rows (window functions, hash joins): PostgreSQL's
    default `work_mem` (4 MB) turns them into external merges. `SET LOCAL` ends
    with the transaction. SQLite has no such limit to raise.
    """
    if is_postgresql_session(session):
        await session.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))


async def without_compiling(session: AsyncSession) -> None:
    """Have PostgreSQL run this transaction's queries without compiling their expressions (`jit`).

    It compiles a query it expects to be costly, a million-row join: streaming such a join (a full join of a
    day's lines with its payments, with a CASE per row) took 3.5 s with it and 2.4 s without on this
    project's reference machine. `SET LOCAL` ends with the transaction; SQLite compiles nothing.
    """
    if is_postgresql_session(session):
        await session.execute(text("SET LOCAL jit = off"))
