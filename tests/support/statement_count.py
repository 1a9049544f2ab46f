"""Counting what a piece of work asks of the database: statements sent and transactions begun.

`with counting(db) as count: …` listens on the engine (SQLAlchemy's `before_cursor_execute` and `begin`
events) for as long as the block runs; `count.statements` and `count.transactions` are the totals, and
`count.log` holds every statement's text, to show what a budget test's failure was made of.

Two things are counted as the database sees them rather than as SQLAlchemy sends them: SQLite's
`BEGIN IMMEDIATE`, which kit.db sends as a statement, is the transaction's start (PostgreSQL's BEGIN is
not a statement either), and a COPY (kit.db's `insert_rows` on PostgreSQL), which goes to the driver
directly, is one statement. A PostgreSQL read without a transaction (`read(single_statement=True)`, run
in autocommit: no BEGIN or COMMIT goes to the database) is no transaction.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Connection

from kaquan.kit.db import Database


@dataclass
class StatementCount:
    statements: int = 0
    transactions: int = 0
    log: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """Every statement, one a line, numbered: what a failed budget shows."""
        lines = [f"{self.statements} statements in {self.transactions} transactions:"]
        lines += [f"{n:3}. {sql[:160]}" for n, sql in enumerate(self.log, 1)]
        return "\n".join(lines)


@contextmanager
def counting(db: Database) -> Iterator[StatementCount]:
    """Count every statement and transaction on `db`'s engine while the block runs."""
    count = StatementCount()
    engine = db.engine.sync_engine

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):
            return
        count.statements += 1
        count.log.append(" ".join(statement.split()))

    copy = asyncpg.Connection.copy_records_to_table

    async def counted_copy(connection: asyncpg.Connection, table_name: str, **options: Any) -> Any:
        count.statements += 1
        count.log.append(f"COPY {table_name} FROM STDIN")
        return await copy(connection, table_name, **options)

    def on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # a read without a transaction (`Database.read(single_statement=True)`): no BEGIN is sent
        count.transactions += 1
        count.log.append("-- BEGIN")

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on_begin)
    asyncpg.Connection.copy_records_to_table = counted_copy
    try:
        yield count
    finally:
        asyncpg.Connection.copy_records_to_table = copy
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "begin", on_begin)
