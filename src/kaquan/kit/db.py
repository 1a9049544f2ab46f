"""Database access: URL forms, engines, transactions, and everything that differs by dialect.

This module and `kit.set_work` (scratch tables and the settings of big set work)
are the only ones that know SQLite from PostgreSQL. Services ask them for a
locking SELECT, an insert that ignores conflicts or a bulk copy; they never test
the dialect themselves.

Concurrency model: on PostgreSQL we stay on READ COMMITTED and take row locks
(`FOR UPDATE`, `SKIP LOCKED` for claims) with a bounded `lock_timeout`; on SQLite
every write transaction starts with `BEGIN IMMEDIATE`, which takes the database's
single write lock up front so two writers can never interleave.

Reads that may be a little behind (dashboards, reports, exports, finance listings) ask
for `read(stale_ok=True)`: with a streaming replica configured they run there while the
replica is at most `max_lag_s` behind the primary, and on the primary otherwise. Nothing
that decides a sale reads the replica (pretix's lesson: availability only from the primary).
"""

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Select,
    Table,
    bindparam,
    case,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from kaquan.kit.errors import BadInput, Busy
from kaquan.kit.replica import Replica

log = logging.getLogger(__name__)
T = TypeVar("T")
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])
_READONLY = "kaquan_readonly"


class DuplicateRow(Exception):
    """A bulk copy hit a unique constraint; the surrounding savepoint has the partial work to undo."""


class BadDatabaseUrl(BadInput):
    code = "bad_database_url"


def async_url(url: str) -> str:
    """Turn the plain URL a user writes into the async driver URL kaquan uses."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite:///")):
        return url
    raise BadDatabaseUrl(
        "database URL must look like sqlite:///path/to/file.db or postgresql://user@host:5432/db",
        scheme=url.split("://", 1)[0] if "://" in url else None,
    )


def describe(url: str) -> str:
    """The URL without its password, for logs and benchmark output."""
    return make_url(async_url(url)).render_as_string(hide_password=True)


# A session's memory for its temporary (scratch) tables, taken only as they grow. PostgreSQL's 8 MB default
# sends a million-row scratch table to files, and a random read of it (an index scan) to the kernel.
TEMP_BUFFERS = "256MB"


class Database:
    """One engine plus the dialect-specific statements services need, and optionally a read replica."""

    def __init__(
        self,
        url: str,
        *,
        lock_timeout_ms: int = 2000,
        pool_size: int = 10,
        read_url: str | None = None,
        read_max_lag_s: float = 5.0,
    ) -> None:
        self.url = async_url(url)
        self._dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self.protect = True
        self._lock_timeout_ms = lock_timeout_ms
        self.engine = self._create_engine(lock_timeout_ms, pool_size)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**{_READONLY: True}), expire_on_commit=False, autoflush=False
        )
        # PostgreSQL: statements sent as they come, each committing on its own (no BEGIN, no COMMIT).
        self._statement_sessions = (
            async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT", **{_READONLY: True}),
                expire_on_commit=False,
                autoflush=False,
            )
            if self._dialect == "postgresql"
            else self._read_sessions
        )
        if read_url and self._dialect != "postgresql":
            raise BadDatabaseUrl("a read replica needs a PostgreSQL primary (KAQUAN_DATABASE_URL=postgresql://…)")
        if read_url and not async_url(read_url).startswith("postgresql"):
            raise BadDatabaseUrl("the read replica must be PostgreSQL: postgresql://user@host:5432/db")
        self.replica = Replica(async_url(read_url), self.engine, max_lag_s=read_max_lag_s) if read_url else None

    def twin(self, *, pool_size: int) -> "Database | None":
        """The same database through an engine of its own, for another event loop (connections belong to one).

        None on SQLite: its writers take turns anyway, and an in-memory database is one connection's alone.
        """
        if self._dialect != "postgresql":
            return None
        return Database(self.url, lock_timeout_ms=self._lock_timeout_ms, pool_size=pool_size)

    @property
    def is_postgresql(self) -> bool:
        """Which backend this is: for tests and for this module; services ask for an operation instead."""
        return self._dialect == "postgresql"

    def connections_in_use(self) -> int:
        """Connections checked out of the pool now (0 for a pool that does not count, such as SQLite's NullPool)."""
        checked_out = getattr(self.engine.pool, "checkedout", None)
        return int(checked_out()) if callable(checked_out) else 0

    def _create_engine(self, lock_timeout_ms: int, pool_size: int) -> AsyncEngine:
        if self._dialect == "postgresql":
            return create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={"server_settings": {"lock_timeout": str(lock_timeout_ms), "temp_buffers": TEMP_BUFFERS}},
            )
        path = make_url(self.url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url, poolclass=NullPool if not path else None, pool_size=pool_size)
        _install_sqlite_hooks(engine, self)
        return engine

    @contextmanager
    def unprotected(self) -> Iterator[None]:
        """Test-only: drop row locks and IMMEDIATE transactions, to show that a race is real without them."""
        self.protect = False
        try:
            yield
        finally:
            self.protect = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits when the block ends, rolls back on any exception."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    yield session
            except DBAPIError as exc:
                if is_lock_error(exc):
                    raise Busy("the database is busy; try again shortly") from exc
                _refuse_unavailable(exc)
                _refuse_unstorable_text(exc)
                raise
            except ConnectionError as exc:
                raise Unavailable() from exc

    @asynccontextmanager
    async def read(self, *, stale_ok: bool = False, single_statement: bool = False) -> AsyncIterator[AsyncSession]:
        """A read-only transaction; on SQLite it does not take the write lock.

        `stale_ok`: the answer may be up to the replica's `max_lag_s` old (a page, a report, an export),
        so it runs on the read replica when one is configured and fresh enough.

        `single_statement`: the block reads with one statement (or statements that need not see one
        snapshot), so on PostgreSQL it needs no transaction: no BEGIN and COMMIT round trips around it.
        Under READ COMMITTED a statement sees its own snapshot either way; what such a block must not do
        is rely on anything scoped to a transaction (SET LOCAL, advisory xact locks, row locks, cursors).
        """
        sessions = self._statement_sessions if single_statement else self._read_sessions
        if stale_ok and self.replica is not None and await self.replica.fresh():
            sessions = self.replica.sessions
        async with sessions() as session:
            try:
                async with session.begin():
                    yield session
            except DBAPIError as exc:
                _refuse_unavailable(exc)
                _refuse_unstorable_text(exc)
                raise
            except ConnectionError as exc:
                raise Unavailable() from exc

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int = 3) -> T:
        """Run `work` in a write transaction, retrying lock timeouts and deadlocks a few times."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction() as session:
                    return await work(session)
            except Busy:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    async def warm(self, connections: int) -> None:
        """Open `connections` of the pool now, so that the first burst of work does not wait for them."""

        async def touch() -> None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        await asyncio.gather(*(touch() for _ in range(connections)))

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.dispose()
        await self.engine.dispose()

    # Dialect-specific statements -------------------------------------------------

    @property
    def moves_balances_at_commit(self) -> bool:
        """Whether a balance move written to `ledger_balance_moves` is applied by the database as the transaction
        commits (PostgreSQL's deferred trigger); otherwise the caller moves the balance itself."""
        return self.is_postgresql and self.protect

    @property
    def copy_runs_beside_python(self) -> bool:
        """Whether a bulk copy leaves this process's GIL free (a server stores the rows, not a thread of ours)."""
        return self.is_postgresql

    @property
    def joins_by_hashing(self) -> bool:
        """Whether big joins and anti-joins hash their smaller side (PostgreSQL) rather than look every row up
        in an index (SQLite, which without one scans the other table once per row)."""
        return self.is_postgresql

    @property
    def copies_dates_as_text(self) -> bool:
        """Whether `copy_rows` wants dates as ISO strings (SQLite) rather than `date` objects (PostgreSQL)."""
        return not self.is_postgresql

    def copy_datetime(self, moment: datetime) -> Any:
        """An aware datetime as `copy_rows` wants it: as is on PostgreSQL, the UTC text SQLAlchemy stores on SQLite."""
        if self.is_postgresql:
            return moment
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def claim(self, stmt: AnySelect) -> AnySelect:
        """Lock the selected rows, skipping rows another transaction holds (a claim queue)."""
        return stmt.with_for_update(skip_locked=True) if self.is_postgresql and self.protect else stmt

    def lock(self, stmt: AnySelect) -> AnySelect:
        """Lock the selected rows, waiting for other holders (bounded by lock_timeout)."""
        return stmt.with_for_update() if self.is_postgresql and self.protect else stmt

    def insert(self, table: Table | type[Any]) -> Any:
        """An INSERT supporting `.on_conflict_do_nothing()` on both dialects; of a mapped class, it returns ORM rows."""
        builder = postgresql.insert if self.is_postgresql else sqlite.insert
        return builder(table)

    async def frame_of(self, session: AsyncSession, stmt: Any, schema: Mapping[str, Any]) -> pl.DataFrame:
        """The rows of `stmt` inside the session's transaction as a polars frame of `schema` (name: polars type,
        in the statement's column order).

        On PostgreSQL the server writes them as CSV (`COPY (…) TO STDOUT`) and polars reads it: a million
        rows cross without a Python object each, where asyncpg's records and a cursor's round trips cost
        seconds. The statement's parameters go in as literals the server itself quotes (asyncpg's
        `copy_from_query`), with no type's bind processing. On SQLite the rows are fetched a batch at a time.
        """
        if not self.is_postgresql:
            result = await session.stream(stmt, execution_options={"yield_per": 50_000})
            frames = [pl.DataFrame(rows, schema=dict(schema), orient="row") async for rows in result.partitions()]
            return pl.concat(frames) if frames else pl.DataFrame(schema=dict(schema))
        compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        written = io.BytesIO()

        async def keep(data: bytes) -> None:
            written.write(data)

        driver = await _driver_of(session)
        await driver.copy_from_query(str(compiled), *params, output=keep, format="csv")
        written.seek(0)
        return pl.read_csv(written, has_header=False, schema=dict(schema))

    async def copy_rows(
        self, session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Bulk-insert raw rows inside the session's transaction: COPY on PostgreSQL, executemany on SQLite.

        Values are passed to the driver as they are: dates as `date` on PostgreSQL and
        ISO strings on SQLite, bytes as bytes.
        """
        driver = await _driver_of(session)
        with _duplicates_refused(table):
            if self.is_postgresql:
                await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
                return
            placeholders = ", ".join("?" for _ in columns)
            sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
            await driver.executemany(sql, rows)

    @property
    def copies_csv(self) -> bool:
        """Whether `copy_csv` can store rows written as CSV (PostgreSQL's COPY … FROM STDIN (FORMAT csv))."""
        return self.is_postgresql

    async def copy_csv(
        self, session: AsyncSession, table: Table, columns: Sequence[str], data: bytes, *, texts: Sequence[str]
    ) -> None:
        """Bulk-insert rows written as UTF-8 CSV (no header, `"` quotes) inside the session's transaction.

        The server parses the rows, so no Python object is made per row or value (the rows can be written by
        polars, in Rust). In `texts`, the text columns, an empty field is an empty string, never NULL.
        Only where `copies_csv`; a unique constraint refusing a row raises `DuplicateRow`, as `copy_rows` does.
        """
        driver = await _driver_of(session)
        with _duplicates_refused(table):
            # a memoryview: asyncpg would take bytes for a file's path
            await driver.copy_to_table(
                table.name, source=memoryview(data), columns=list(columns), format="csv", force_not_null=list(texts)
            )

    def chunk_size(self) -> int:
        """How many bind parameters one IN (...) list may safely hold."""
        return 10_000 if self.is_postgresql else 30_000


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows whose ids nobody needs back (events, postings): COPY on PostgreSQL, one INSERT on SQLite.

    The group-commit paths write several such rows per order; COPY spares
    building, binding and parsing a many-row INSERT. Every row names the same
    columns; datetimes are aware (the columns are timestamptz).
    """
    if not rows:
        return
    if not is_postgresql_session(session):
        await session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    driver = await _driver_of(session)
    await driver.copy_records_to_table(
        table.name, records=[tuple(row[column] for column in columns) for row in rows], columns=columns
    )


@contextmanager
def _duplicates_refused(table: Table) -> Iterator[None]:
    """A unique violation in a bulk copy, from either driver, as `DuplicateRow`."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ in ("UniqueViolationError", "IntegrityError"):
            raise DuplicateRow(table.name) from exc
        raise


async def _driver_of(session: AsyncSession) -> Any:
    """The driver's own connection under the session's transaction (asyncpg's or aiosqlite's), for bulk copies."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the connection has no driver connection")
    return driver


def is_postgresql_session(session: AsyncSession) -> bool:
    """Whether the session runs on PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


async def bulk_update_by_id(
    session: AsyncSession,
    table: Table,
    column: str,
    new_values: Mapping[int, int],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    values: Mapping[str, Any] | None = None,
) -> int:
    """Give each row whose id is a key of `new_values` its own integer value of `column` in one statement.

    Only rows that also match `where` change; `values` are set on all of them.
    Returns how many rows changed. PostgreSQL gets the (id, value) pairs as two
    arrays, so the statement text is the same whatever the number of rows (one
    prepared statement); SQLite gets a CASE on the id. Keep `new_values` to a few
    hundred entries per call.
    """
    ids = list(new_values)
    key = table.c.id
    if is_postgresql_session(session):
        pairs = select(
            func.unnest(bindparam("ids", ids, type_=ARRAY(BigInteger))).label("id"),
            func.unnest(bindparam("new_values", [new_values[i] for i in ids], type_=ARRAY(BigInteger))).label("value"),
        ).subquery()
        stmt = update(table).where(key == pairs.c.id, *where).values({**(values or {}), column: pairs.c.value})
    else:
        stmt = (
            update(table)
            .where(key.in_(ids), *where)
            .values({**(values or {}), column: case(dict(new_values), value=key)})
        )
    result = await session.execute(stmt.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def serialize_on(session: AsyncSession, name: str) -> None:
    """Serialize the transactions that share `name` until they end.

    PostgreSQL: a transaction-scoped advisory lock on `name`, released at commit or
    rollback; SQLite writers are serialized by BEGIN IMMEDIATE already.
    """
    if is_postgresql_session(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


async def serialize_on_all(session: AsyncSession, names: Sequence[str]) -> None:
    """`serialize_on` each of `names`, in the order given, in one round trip.

    PostgreSQL evaluates a SELECT's list left to right, so the locks are taken in that order: callers
    that always pass their names sorted can never deadlock on each other.
    """
    if not names or not is_postgresql_session(session):
        return
    locks = ", ".join(f"pg_advisory_xact_lock(hashtext(:name{i}))" for i in range(len(names)))
    await session.execute(text(f"SELECT {locks}"), {f"name{i}": name for i, name in enumerate(names)})


def share_locked(session: AsyncSession, stmt: AnySelect) -> AnySelect:
    """Lock the selected rows against writers but not against other sharers (`FOR SHARE` on PostgreSQL)."""
    return stmt.with_for_update(read=True) if is_postgresql_session(session) else stmt


def is_lock_error(exc: DBAPIError) -> bool:
    """A lock timeout, deadlock or busy database: worth a bounded retry, then an honest 503."""
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    if isinstance(exc, OperationalError) and "database is locked" in text:
        return True
    return any(marker in text for marker in ("lock timeout", "deadlock detected", "could not obtain lock"))


class Unavailable(Busy):
    """The database server went away or is restarting (a restart, a failover): an honest 'try again' too."""

    def __init__(self) -> None:
        super().__init__("the database is unavailable for a moment; try again shortly", retry_after=2)


# What asyncpg and PostgreSQL say when a server shuts down, restarts or drops the connection (the pool then
# opens a new one, to whichever host accepts writes).
_CONNECTION_LOST = (
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "terminating connection",
    "connection was closed",
    "connection is closed",
    "connection reset",
    "connection refused",
)


def is_connection_lost(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return exc.connection_invalidated or any(marker in text for marker in _CONNECTION_LOST)


def _refuse_unavailable(exc: DBAPIError) -> None:
    if is_connection_lost(exc):
        raise Unavailable() from exc


UNSTORABLE_TEXT = "22021"  # PostgreSQL's character_not_in_repertoire: a NUL character in a text value


def _refuse_unstorable_text(exc: DBAPIError) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can): a client's bad input, refused as such, never a 500."""
    if getattr(exc.orig, "sqlstate", None) == UNSTORABLE_TEXT:
        raise BadInput("text may not contain NUL characters") from exc


def _install_sqlite_hooks(engine: AsyncEngine, db: Database) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, so it can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=30000",
            "foreign_keys=ON",
            "cache_size=-65536",  # 64 MiB: bulk imports insert into a large unique index
            "temp_store=MEMORY",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        readonly = connection.get_execution_options().get(_READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly or not db.protect else "BEGIN IMMEDIATE")
