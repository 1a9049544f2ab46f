"""The `kaquan` command line driven as an operator drives it: the runner, its fixtures, and small helpers.

`kaquan` gives each test a migrated database of its own (a copy of the migrated SQLite template, and the
run's migrated PostgreSQL database emptied, when KAQUAN_TEST_DATABASE_URL is set) and a var/ directory of
its own; `unmigrated_kaquan` the same on an empty database (a new one on PostgreSQL), for what `migrate`
itself does. Copying or emptying takes a fraction of a second where migrating takes seconds, per test and backend.
The fixtures reach the tests through the conftest.py of the folders that use them.
"""

import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer.testing
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from tests.support.builders import random_codes
from tests.support.emptying import empty_postgres, migrated_anew_if_changed
from tests.support.loops import in_own_loop
from typer.main import get_command
from typer.testing import CliRunner, Result

from kaquan.all_models import metadata
from kaquan.cli.app import app
from kaquan.inventory.levels import Stock, stock
from kaquan.kit import outbox
from kaquan.kit.config import get_settings
from kaquan.kit.db import Database

T = TypeVar("T")
PG_URL = os.environ.get("KAQUAN_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
# Variables from the developer's shell must not leak into the commands under test.
_UNSET = (
    "KAQUAN_MASTER_KEY",
    "KAQUAN_ADMIN_TOKEN",
    "KAQUAN_REDIS_URL",
    "KAQUAN_DEV_GATEWAY",
    "KAQUAN_DEV_GATEWAY_SECRET",
    "KAQUAN_TRUSTED_PROXIES",
)


@dataclass
class Kaquan:
    """The `kaquan` command, configured for one test's database and var/ directory."""

    database_url: str
    var_dir: Path

    def __call__(self, *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
        environment: dict[str, str | None] = {
            "KAQUAN_DATABASE_URL": self.database_url,
            "KAQUAN_VAR_DIR": str(self.var_dir),
            "COLUMNS": "200",
            **dict.fromkeys(_UNSET),
            **(env or {}),
        }
        get_settings.cache_clear()
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(typer.testing, "_get_command", lambda _: _command())
                return CliRunner().invoke(app, list(args), env=environment, input=stdin)
        finally:
            get_settings.cache_clear()

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; returns its standard output."""
        result = self(*args)
        assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        assert result.exception is None, result.exception
        return result.stdout

    def refused(self, *args: str, exit_code: int = 1) -> str:
        """Run a command that must be refused cleanly (no traceback); returns its standard error."""
        before = self.state()
        result = self(*args)
        assert result.exit_code == exit_code, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        assert isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
        assert self.state() == before
        return result.stderr

    def state(self) -> dict[str, Any]:
        """Row counts of every table and the stock levels: what a refused command must not change."""
        return in_own_loop(lambda: _on(self.database_url, _state))

    def stock(self) -> list[Stock]:
        return in_own_loop(lambda: _on(self.database_url, _stock))

    def outbox_pass(self) -> int:
        """What one pass of `kaquan worker` does with the outbox: the due events run; how many ran."""
        return in_own_loop(lambda: _on(self.database_url, outbox.run_due))


@cache
def _command() -> Any:
    """The click command of `app`, built once: typer's runner builds it again for every run (~20 ms of
    signatures and type hints for the whole command tree), which the suite's thousands of runs add up to minutes.
    The tree depends on nothing but the code, so one build serves every run."""
    return get_command(app)


async def _on(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """`work` on a `Database` of `url` opened for it and disposed after (a command's database, seen by the test)."""
    db = Database(url)
    try:
        return await work(db)
    finally:
        await db.dispose()


async def _state(db: Database) -> dict[str, Any]:
    async with db.read() as session:
        if "alembic_version" not in await session.run_sync(
            lambda s: s.connection().dialect.get_table_names(s.connection())
        ):
            return {}
        counts: dict[str, Any] = {
            table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
            for table in metadata.sorted_tables
        }
        counts["stock"] = await stock(session)
        return counts


async def _stock(db: Database) -> list[Stock]:
    async with db.read() as session:
        return await stock(session)


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[Callable[[str], None]]:
    """Runs one statement against the server of KAQUAN_TEST_DATABASE_URL (never inside its database)."""
    assert PG_URL is not None

    def execute(statement: str) -> None:
        async def work() -> None:
            admin = Database(PG_URL)
            try:
                async with admin.engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text(statement))
            except OSError as exc:
                raise RuntimeError(f"KAQUAN_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}") from exc
            finally:
                await admin.dispose()

        in_own_loop(work)

    yield execute


def _own_database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[Kaquan]:
    if request.param == "sqlite":
        path = tmp_path / "kaquan.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield Kaquan(f"sqlite:///{path}", tmp_path / "var")
        return
    assert PG_URL is not None
    if migrated:  # the run's migrated database, emptied (tests/support/emptying.py)
        url = make_url(request.getfixturevalue("postgres_migrated")).set(drivername="postgresql")
        plain_url = url.render_as_string(hide_password=False)
        in_own_loop(lambda: _on(plain_url, empty_postgres))
        try:
            yield Kaquan(plain_url, tmp_path / "var")
        finally:
            in_own_loop(lambda: _on(plain_url, migrated_anew_if_changed))
        return
    execute: Callable[[str], None] = request.getfixturevalue("postgres_admin")
    # Our own database next to the shared test one: other test runs use that one.
    plain = make_url(PG_URL)
    name = f"{plain.database}_cli_{os.getpid()}"
    execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    execute(f'CREATE DATABASE "{name}"')
    try:
        yield Kaquan(plain.set(database=name).render_as_string(hide_password=False), tmp_path / "var")
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def kaquan(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kaquan]:
    """The CLI on a migrated database of this test's own (as after `kaquan migrate`)."""
    yield from _own_database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def unmigrated_kaquan(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kaquan]:
    """The CLI on an empty, unmigrated database of this test's own."""
    yield from _own_database(request, tmp_path, migrated=False)


def one_line(text: str) -> str:
    """Rich wraps and boxes long messages; join the words back into one line."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text).strip()


def given_catalog(kaquan: Kaquan, *sku_options: str, code: str = "VIDEO-1M") -> None:
    kaquan.ok("product", "create", "--name", "Video", "--kind", "membership")
    kaquan.ok("sku", "create", "--product", "1", "--code", code, "--name", "Monthly", "--price", "1990", *sku_options)


def code_file(tmp_path: Path, *lines: str, name: str = "codes.txt", encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode(encoding))
    return str(path)


def given_stock(kaquan: Kaquan, tmp_path: Path, count: int) -> None:
    """The catalog of `given_catalog`, its SKU VIDEO-1M stocked with `count` codes."""
    given_catalog(kaquan)
    kaquan.ok("import", code_file(tmp_path, *random_codes(count)), "--sku", "VIDEO-1M")
