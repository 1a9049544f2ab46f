"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when KAQUAN_TEST_DATABASE_URL is set.

A set but unreachable database or Redis fails the run: it never skips silently.
The test schema is built by the migrations, never by `create_all`.
"""

import asyncio
import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from _pytest.nodeid import NodeId
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tests.support.emptying import empty_postgres
from tests.support.identity import PASSWORD, HeadersFor
from tests.support.loops import in_own_loop
from tests.support.redis import worker_redis_url
from tests.support.tasks import stop_tasks_left_running

from kaquan import identity
from kaquan import runtime as runtime_module
from kaquan.identity import credentials
from kaquan.identity.permissions import ROLES, Permission
from kaquan.kit import clock
from kaquan.kit.config import Settings
from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database, async_url
from kaquan.kit.migrate import upgrade
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

# pytest-xdist workers inherit COLUMNS=80 and LINES=24, and Rich fixes a console's size from them when the
# console is made (the CLI's, at import): tests set the width they need per command instead.
for _fixed_size in ("COLUMNS", "LINES"):
    os.environ.pop(_fixed_size, None)

PG_URL = os.environ.get("KAQUAN_TEST_DATABASE_URL")
REDIS_URL = worker_redis_url()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep an `xdist_group` on one worker under `--dist loadgroup` (the cluster topology: one per run).

    pytest-xdist 3.8 marks a grouped test by appending `@group` to `item._nodeid`, which pytest 9 no longer
    reads (a node's id is `item._id`), so every grouped test was scheduled on its own and each worker brought
    up a topology of its own. This names the group in the id pytest reads, once, after xdist's hook ran.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers under --dist loadgroup
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = f"@{'_'.join(groups)}"
        if groups and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a fresh copy of it."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        db = Database(f"sqlite:///{path}")
        await upgrade(db)
        await db.dispose()

    in_own_loop(build)
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, migrated once, dropped at the end.

    Its own database (next to the one KAQUAN_TEST_DATABASE_URL names) lets two test
    runs share one server without truncating each other's tables.
    """
    assert PG_URL is not None
    admin_url = make_url(async_url(PG_URL))
    name = f"{admin_url.database}_run_{os.getpid()}"
    url = admin_url.set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        admin = Database(PG_URL)
        try:
            async with admin.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        except OSError as exc:
            raise RuntimeError(f"KAQUAN_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}") from exc
        finally:
            await admin.dispose()
        db = Database(url)
        await upgrade(db)
        await db.dispose()

    async def drop() -> None:
        admin = Database(PG_URL)
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    in_own_loop(create)
    yield url
    in_own_loop(drop)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_migrated")
        database = Database(url, pool_size=20)
        await empty_postgres(database)
    else:
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "kaquan.db"
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}", pool_size=20)
    clock.reset()
    running_before = asyncio.all_tasks()
    yield database
    clock.reset()
    await stop_tasks_left_running(running_before)
    await database.dispose()


@pytest.fixture(scope="session")
def suite_settings() -> Settings:
    """Settings read from the environment once per run: reading its 81 KAQUAN_* fields takes ~10 ms, per test."""
    return Settings(lookup_per_minute=10, dev_gateway=True)


@pytest.fixture
def settings(suite_settings: Settings, tmp_path: Path) -> Settings:
    """The suite pays through the dev gateway, so it switches it on; a default Settings() has it off.

    Each test's own copy, with a var/ directory and a master key of its own.
    """
    return suite_settings.model_copy(
        update={"var_dir": tmp_path / "var", "master_key": base64.b64encode(new_key()).decode()}
    )


@pytest.fixture
async def rt(db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await runtime_module.start(settings, db=db)
    yield runtime
    await runtime.risk.close()
    await runtime.agent_orders.close()
    await runtime.flash.close()
    for client in (runtime.redis, runtime.risk_redis, runtime.flash_redis):
        if client is not None:
            await client.aclose()


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(rt=rt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


@pytest.fixture
def headers_for(rt: Runtime) -> HeadersFor:
    """`await headers_for("support")`: the bearer header of a fresh user of that role, its token holding
    every permission of the role (or just `scopes=`). The user's password is PASSWORD."""

    async def make(
        role: str, *, scopes: Iterable[Permission] | None = None, username: str | None = None
    ) -> dict[str, str]:
        async with rt.db.transaction() as session:
            user = await identity.create_user(
                session, username or f"{role}-{secrets.token_hex(3)}", PASSWORD, role, actor="test"
            )
            _, token = await identity.create_token(
                session,
                user.id,
                "test",
                sorted(ROLES[role] if scopes is None else scopes),
                expires_in_days=30,
                allowed=ROLES[role],
                actor="test",
            )
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
async def admin_headers(headers_for: HeadersFor) -> dict[str, str]:
    """The bearer header of the owner `owner`, a real user with a token holding every permission."""
    return await headers_for("owner", username="owner")


@pytest.fixture(autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest: tests check the rules, not the cost parameters."""
    previous = credentials.use_hasher(PasswordHasher.from_parameters(CHEAPEST))
    yield
    credentials.restore(previous)


@pytest.fixture(params=["memory"] + (["redis"] if REDIS_URL else []))
async def redis_or_none(request: pytest.FixtureRequest) -> AsyncIterator[Redis | None]:
    """None for the in-process fallback, else a live Redis (flushed of kaquan keys)."""
    if request.param == "memory":
        yield None
        return
    assert REDIS_URL is not None
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:
        raise RuntimeError(f"KAQUAN_TEST_REDIS_URL is set but Redis is unreachable: {exc}") from exc
    keys = [key async for key in redis.scan_iter("kaquan:*")]
    if keys:
        await redis.delete(*keys)
    yield redis
    await redis.aclose()


@pytest.fixture(autouse=True)
def _no_clock_leak() -> Iterator[None]:
    yield
    clock.reset()
