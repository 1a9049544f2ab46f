"""Database URLs in the forms users write, and the schema the migrations build."""

import polars as pl
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import QueuePool

from kaquan.all_models import metadata
from kaquan.kit.db import BadDatabaseUrl, Database, DuplicateRow, async_url, describe
from kaquan.kit.migrate import downgrade, upgrade
from kaquan.kit.set_work import scratch_table


@pytest.mark.parametrize(
    ("plain", "driver"),
    [
        ("sqlite:///var/kaquan.db", "sqlite+aiosqlite:///var/kaquan.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
        ("postgresql://shop@db:5432/kaquan", "postgresql+asyncpg://shop@db:5432/kaquan"),
        ("postgres://shop@db/kaquan", "postgresql+asyncpg://shop@db/kaquan"),
    ],
)
def test_plain_urls_get_the_async_driver(plain: str, driver: str) -> None:
    assert async_url(plain) == driver


@pytest.mark.parametrize("bad", ["mysql://root@db/x", "kaquan.db", "sqlite://relative-without-path"])
def test_other_urls_are_refused_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(BadDatabaseUrl, match=r"sqlite:///path/to/file\.db or postgresql://"):
        async_url(bad)


def test_described_urls_never_show_a_password() -> None:
    assert "hunter2" not in describe("postgresql://shop:hunter2@db/kaquan")


# Alembic's comparison skips indexes on expressions (with these warnings): they are checked by name below.
SKIPS_EXPRESSIONS = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index",
    "ignore:autogenerate skipping metadata-specified expression-based index",
)
ON_EXPRESSIONS = {
    index.name
    for table in metadata.tables.values()
    for index in table.indexes
    if not all(isinstance(part, Column) for part in index.expressions)
}


@SKIPS_EXPRESSIONS
async def test_the_migrations_build_exactly_the_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert diff == []


async def test_the_migrations_build_the_indexes_on_expressions_too(db: Database) -> None:
    listing = "SELECT indexname FROM pg_indexes" if db.is_postgresql else "SELECT name FROM sqlite_master"
    async with db.engine.connect() as conn:
        built = set((await conn.execute(text(listing))).scalars())
    assert ON_EXPRESSIONS
    assert built >= ON_EXPRESSIONS


@SKIPS_EXPRESSIONS
async def test_the_migrations_are_reversible(db: Database) -> None:
    await downgrade(db, "base")
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    assert set(tables) <= {"alembic_version"}
    await upgrade(db)
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert diff == []


# What CSV quotes or a COPY might misread: separators, quotes, line breaks, backslashes, the end-of-data mark,
# NULL's spellings, text outside ASCII, the empty string and spaces around a word.
AWKWARD = ["a,b", 'say "hi"', "two\nlines", "cr\r\nlf", "back\\slash", "\\.", "\\N", "NULL", "京东E卡 100元", "", " x "]


async def numbered_texts(session: AsyncSession) -> Table:
    return await scratch_table(
        session, "csv_copied", Column("n", Integer, primary_key=True), Column("t", Text, nullable=False)
    )


def csv_of(texts: list[str], first: int = 0) -> bytes:
    frame = pl.DataFrame({"n": range(first, first + len(texts)), "t": texts})
    return frame.write_csv(include_header=False).encode()


async def test_texts_round_trip_exactly_through_a_copy_of_csv(db: Database) -> None:
    if not db.copies_csv:
        pytest.skip("COPY of CSV is PostgreSQL's")
    async with db.transaction() as session:
        table = await numbered_texts(session)

        await db.copy_csv(session, table, ["n", "t"], csv_of(AWKWARD), texts=["t"])

        stored = (await session.execute(select(table.c.t).order_by(table.c.n))).scalars().all()
    assert stored == AWKWARD


async def test_an_empty_unquoted_field_of_a_text_column_is_an_empty_text_not_null(db: Database) -> None:
    if not db.copies_csv:
        pytest.skip("COPY of CSV is PostgreSQL's")
    async with db.transaction() as session:
        table = await numbered_texts(session)

        await db.copy_csv(session, table, ["n", "t"], b'1,\n2,""\n', texts=["t"])

        stored = (await session.execute(select(table.c.t).order_by(table.c.n))).scalars().all()
    assert stored == ["", ""]


async def test_a_copy_of_csv_refused_by_a_unique_key_is_a_duplicate_row(db: Database) -> None:
    if not db.copies_csv:
        pytest.skip("COPY of CSV is PostgreSQL's")
    async with db.transaction() as session:
        table = await numbered_texts(session)
        await db.copy_csv(session, table, ["n", "t"], csv_of(["first"]), texts=["t"])

        with pytest.raises(DuplicateRow):
            async with session.begin_nested():
                await db.copy_csv(session, table, ["n", "t"], csv_of(["second", "again"]), texts=["t"])

        stored = (await session.execute(select(table.c.t))).scalars().all()
    assert stored == ["first"]


async def test_a_query_read_as_a_frame_keeps_every_text_exactly_and_nulls_as_nulls(db: Database) -> None:
    async with db.transaction() as session:
        table = await scratch_table(
            session, "frame_read", Column("n", Integer, primary_key=True), Column("t", Text, nullable=True)
        )
        await session.execute(table.insert(), [{"n": n, "t": t} for n, t in enumerate([*AWKWARD, None])])
        wanted = select(table.c.n, table.c.t).where(table.c.n >= 1).order_by(table.c.n)

        frame = await db.frame_of(session, wanted, {"n": pl.Int64, "t": pl.String})

    assert frame["n"].to_list() == list(range(1, len(AWKWARD) + 1))
    assert frame["t"].to_list() == [*AWKWARD[1:], None]


async def test_a_query_with_no_rows_reads_as_an_empty_frame(db: Database) -> None:
    async with db.transaction() as session:
        table = await numbered_texts(session)

        frame = await db.frame_of(session, select(table.c.n, table.c.t), {"n": pl.Int64, "t": pl.String})

    assert (frame.height, frame.schema) == (0, pl.Schema({"n": pl.Int64, "t": pl.String}))


async def test_a_twin_for_another_loop_reaches_the_same_postgresql_database_through_its_own_engine(
    db: Database,
) -> None:
    twin = db.twin(pool_size=1)
    if not db.is_postgresql:
        assert twin is None  # SQLite's writers take turns; an in-memory database is one connection's alone
        return
    assert twin is not None
    try:
        async with db.read() as session:
            here = (await session.execute(text("SELECT current_database()"))).scalar_one()
        async with twin.read() as session:
            there = (await session.execute(text("SELECT current_database()"))).scalar_one()
        assert there == here
        assert twin.engine is not db.engine
    finally:
        await twin.dispose()


async def test_warming_opens_pool_connections_ahead_of_the_first_burst(db: Database) -> None:
    await db.warm(3)

    pool = db.engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 0  # all back in the pool, each opened once
    assert pool.checkedin() >= 3
