"""Whether this process should get traffic: its database answers and is migrated, Redis (when configured)
answers, and a worker has run a pass recently. Each check is bounded in time, so a probe never hangs."""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta

from alembic.script import ScriptDirectory
from sqlalchemy import text

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.keyvalue import RedisClient
from kaquan.kit.migrate import alembic_config
from kaquan.operations.heartbeat import last_beat

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    age_s: int | None = None  # the worker check's: seconds since the last pass, when there was one


@dataclass(frozen=True)
class Readiness:
    checks: list[Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)


def _expected_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def _database(db: Database) -> Check:
    async with db.read() as session:
        applied = set((await session.scalars(text("SELECT version_num FROM alembic_version"))).all())
    expected = _expected_heads()
    if applied != expected:
        return Check("migrations", False, f"database at {sorted(applied)}, code expects {sorted(expected)}")
    return Check("migrations", True, "current")


async def _redis(redis: RedisClient) -> Check:
    await redis.ping()
    return Check("redis", True, "answers")


async def _worker(db: Database, max_age: timedelta) -> Check:
    async with db.read() as session:
        beat_at = await last_beat(session)
    if beat_at is None:
        return Check("worker", False, "no worker has run yet")
    age = clock.now() - beat_at
    seconds = int(age.total_seconds())
    return Check("worker", age <= max_age, f"last pass {seconds} s ago", age_s=seconds)


async def _bounded(name: str, probe: Awaitable[Check]) -> Check:
    try:
        return await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return Check(name, False, f"no answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:
        return Check(name, False, f"unreachable ({type(exc).__name__})")


async def check_readiness(db: Database, redis: RedisClient | None, *, worker_max_age: timedelta | None) -> Readiness:
    """Every check, concurrently; `worker_max_age=None` leaves the worker out (a process told not to wait for one)."""
    probes = [_bounded("database", _database(db))]
    if redis is not None:
        probes.append(_bounded("redis", _redis(redis)))
    if worker_max_age is not None:
        probes.append(_bounded("worker", _worker(db, worker_max_age)))
    return Readiness(list(await asyncio.gather(*probes)))
