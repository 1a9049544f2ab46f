"""A migrated PostgreSQL database of a test run's own, emptied before each test instead of made anew.

Emptying takes ~20 ms; copying a migrated template (`CREATE DATABASE … TEMPLATE`) and dropping it took
~0.6 s a test on a busy 2-core machine, minutes over the CLI tests. A test that changed the schema itself
(a restore, a table of a newer kaquan) is found afterwards by `migrated_anew_if_changed`, which builds it anew.
"""

import itertools

from sqlalchemy import text

from kaquan.all_models import metadata
from kaquan.kit.db import Database
from kaquan.kit.migrate import upgrade

# The rows the migrations themselves write: a fresh database has them.
KEPT_ROWS = {"alembic_version", "inventory_warehouses"}
TRUNCATE_EVERY = 50
_EMPTIED = itertools.count(1)
_ID_SEQUENCES: dict[str, list[str]] = {}  # by database URL, until a test changes its schema


async def empty_postgres(db: Database) -> None:
    """Empty every table and restart its ids, as a fresh database would have them.

    DELETE takes milliseconds where TRUNCATE of every table takes ~0.2 s (new files
    for each table), a few minutes over the suite. DELETE leaves dead rows behind,
    and this server may run without autovacuum, so every 50th emptying truncates.
    """
    tables = [t.name for t in metadata.sorted_tables if t.name not in KEPT_ROWS]
    async with db.engine.connect() as conn:
        if next(_EMPTIED) % TRUNCATE_EVERY == 0:
            statements = [f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"]
        else:
            if db.url not in _ID_SEQUENCES:
                found = await conn.execute(
                    text(
                        "SELECT pg_get_serial_sequence(table_name, column_name) FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND table_name = ANY(CAST(:tables AS text[]))"
                    ),
                    {"tables": tables},
                )
                _ID_SEQUENCES[db.url] = [sequence for sequence in found.scalars() if sequence]
            restarts = [f"setval('{sequence}', 1, false)" for sequence in _ID_SEQUENCES[db.url]]
            # The names come from our own metadata and the server's catalogue, never from input.
            deletes = [f"DELETE FROM {name}" for name in reversed(tables)]  # noqa: S608
            statements = [*deletes, f"SELECT {', '.join(restarts)}"]
        # The migrations' own warehouse stays; the ids of those tests added start again after it.
        statements += [
            "DELETE FROM inventory_warehouses WHERE code <> 'main'",
            "SELECT setval(pg_get_serial_sequence('inventory_warehouses', 'id'), MAX(id)) FROM inventory_warehouses",
        ]
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(f"BEGIN; {'; '.join(statements)}; COMMIT")


async def migrated_anew_if_changed(db: Database) -> None:
    """After a test that may have changed the schema (a restore, a table of a newer kaquan): if the database no
    longer holds exactly the migrated tables and the sequences emptying restarts, drop the public schema and
    migrate it again."""
    async with db.engine.connect() as conn:
        found = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        tables = set(found.scalars())
        found = await conn.execute(text("SELECT schemaname || '.' || sequencename FROM pg_sequences"))
        sequences = set(found.scalars())
    known = _ID_SEQUENCES.get(db.url)
    if tables == {t.name for t in metadata.sorted_tables} | {"alembic_version"} and (
        known is None or set(known) <= sequences
    ):
        return
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    _ID_SEQUENCES.pop(db.url, None)
    await upgrade(db)
