"""Labelled decision history for the learning tests: synthetic examples recorded as reviewed decisions."""

from datetime import timedelta

from sqlalchemy import insert

from kaquan.bench.risk import synthetic_history
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk.learning import Example
from kaquan.risk.models import RiskDecision


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
