"""What a database holds, read the same way on SQLite and PostgreSQL: rows per table, schema revision, key ids."""

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import func, inspect, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from kaquan.kit.crypto import wrapped_key_id
from kaquan.kit.keys import StoredKey
from kaquan.kit.migrate import alembic_config

# Rows the first start of any kaquan writes by itself (the schema's version, the default warehouse, the
# wrapped keys, a worker's heartbeat): a database holding only these holds nothing to lose.
FIRST_START_TABLES = frozenset({"alembic_version", "inventory_warehouses", "kit_keys", "worker_heartbeats"})


async def row_counts(conn: AsyncConnection) -> dict[str, int]:
    """Rows per table, every table of the schema kaquan's migrations built; empty for a bare database."""
    names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    counts: dict[str, int] = {}
    for name in sorted(names):
        counts[name] = int((await conn.execute(select(func.count()).select_from(table(name)))).scalar_one())
    return counts


def holds_data(counts: dict[str, int]) -> bool:
    return any(rows for name, rows in counts.items() if name not in FIRST_START_TABLES)


async def schema_revision(conn: AsyncConnection) -> str:
    """The migration revision(s) the database is at, comma-separated; empty when it was never migrated."""
    try:
        rows = (await conn.execute(text("SELECT version_num FROM alembic_version ORDER BY version_num"))).scalars()
    except DBAPIError:  # no such table: a bare database
        return ""
    return ",".join(rows)


async def master_key_ids(conn: AsyncConnection) -> list[str]:
    wrapped = (await conn.execute(select(StoredKey.wrapped))).scalars()
    return sorted({key_id.hex() for value in wrapped if (key_id := wrapped_key_id(value)) is not None})


def unknown_revisions(revision: str) -> list[str]:
    """The revisions of `revision` this code's migrations do not know: a newer kaquan wrote them."""
    script = ScriptDirectory.from_config(alembic_config())
    unknown = []
    for one in filter(None, revision.split(",")):
        try:
            found = script.get_revision(one)
        except CommandError:
            found = None
        if found is None:
            unknown.append(one)
    return unknown
