"""Labelled decision history for the learning tests: synthetic examples recorded as reviewed decisions."""

from datetime import timedelta

from sqlalchemy import insert

from kaquan.bench.risk import synthetic_history
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk import RiskContext, learning
from kaquan.risk.learning import Example
from kaquan.risk.models import RiskDecision
from kaquan.runtime import Runtime


def history(count: int, *, seed: int = 3) -> list[Example]:
    """`count` synthetic decisions over the last 28 days, the planted pattern mostly fraud."""
    return synthetic_history(count, seed=seed, start=clock.now() - timedelta(days=28))


async def given_recorded(db: Database, examples: list[Example]) -> None:
    """The examples as recorded decisions, each labelled by a reviewer."""
    rows: list[dict[str, object]] = [
        {
            "at": example.at,
            "action": "shop.order",
            "subject": f"ip:198.51.100.{i % 250}",
            "outcome": "approve",
            "score": 0,
            "reasons": [],
            "features": example.features,
            "label": "fraud" if example.fraud else "legit",
        }
        for i, example in enumerate(examples)
    ]
    async with db.transaction() as session:
        await session.execute(insert(RiskDecision.__table__), rows)  # type: ignore[arg-type]


async def given_two_models(rt: Runtime) -> None:
    """v1 active, v2 in shadow, and a few decisions both scored (recorded)."""
    await given_recorded(rt.db, history(1200, seed=4))
    await learning.train(rt.db, [], actor="alice", seed=1)
    async with rt.db.transaction() as session:
        await learning.promote(session, 1, actor="alice")
    await learning.train(rt.db, [], actor="worker", seed=2)
    rt.risk.invalidate()
    for n in range(6):
        await rt.risk.decide(RiskContext("shop.order", ip=f"203.0.113.{n}", submit_ms=300 + n * 5000))
    await rt.risk.log.flush()
