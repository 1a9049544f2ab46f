"""Risk tests: cheap challenges (8–12 bits), and an engine on either counter store."""

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tests.support.alerting import hook, smtp
from tests.support.flash import flash, gate
from tests.support.risk import windows_far_from_their_ends

from kaquan.kit.config import Settings
from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database
from kaquan.risk import (
    DatabaseCounters,
    DatabaseSpentNonces,
    DecisionLog,
    ProofOfWork,
    RedisCounters,
    RedisSpentNonces,
    RiskEngine,
)
from kaquan.runtime import Runtime

__all__ = ["flash", "gate", "hook", "smtp"]


@pytest.fixture
def settings(suite_settings: Settings, tmp_path: Path) -> Settings:
    return suite_settings.model_copy(
        update={
            "var_dir": tmp_path / "var",
            "master_key": base64.b64encode(new_key()).decode(),
            "risk_pow_bits": 8,
            "risk_pow_max_bits": 12,
        }
    )


@pytest.fixture
async def engine(db: Database, settings: Settings, redis_or_none: Redis | None) -> AsyncIterator[RiskEngine]:
    """The decision point on the database, with its counters and spent nonces in Redis or the database."""
    windows_far_from_their_ends()
    if redis_or_none is None:
        counters, spent = DatabaseCounters(db), DatabaseSpentNonces(db)
    else:
        counters, spent = RedisCounters(redis_or_none), RedisSpentNonces(redis_or_none)  # type: ignore[assignment]
    pow_ = ProofOfWork(secrets.token_bytes(32), spent, ttl_s=settings.risk_pow_ttl_s)
    risk = RiskEngine(db, settings, counters, pow_, DecisionLog(db))
    yield risk
    await risk.close()


@pytest.fixture
async def shop(rt: Runtime, engine: RiskEngine) -> AsyncIterator[Runtime]:
    """The runtime, deciding with `engine` (counters in Redis or the database) on its order paths."""
    rt.risk = engine
    yield rt
