"""Leak tracing, whole: the inventory's trace of each leaked code plus the order it went to.

Read-only: tracing changes nothing. Quarantining the affected batches is a
separate, audited step (`inventory.custody.quarantine`).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import LineProblem, Vault, leaks, parse_code_file
from kaquan.kit.db import Database
from kaquan.orders.models import Order


@dataclass(frozen=True)
class OrderFacts:
    number: str
    channel: str
    status: str
    paid_at: datetime | None


@dataclass(frozen=True)
class LeakedCode:
    code: leaks.TracedCode
    order: OrderFacts | None
    reveals: list[leaks.RevealFact]


@dataclass(frozen=True)
class LeakReport:
    found: list[LeakedCode]
    unknown: list[tuple[int, str]]
    problems: list[LineProblem]

    @property
    def batch_ids(self) -> list[int]:
        return sorted({leaked.code.batch_id for leaked in self.found})

    @property
    def unsold(self) -> int:
        return sum(1 for leaked in self.found if leaked.code.status in ("available", "reserved"))


async def trace_leaks(
    db: Database, session: AsyncSession, vault: Vault, data: bytes, *, layout: str = "auto"
) -> LeakReport:
    """Trace every code of a leaked file: one per line, or `card_no,secret` lines."""
    traced = await leaks.trace(db, session, vault, parse_code_file(data, layout=layout))
    order_ids = sorted({code.order_id for code in traced.found if code.order_id is not None})
    orders: dict[int, OrderFacts] = {}
    size = db.chunk_size()
    for start in range(0, len(order_ids), size):
        rows = await session.execute(
            select(Order.id, Order.number, Order.channel, Order.status, Order.paid_at).where(
                Order.id.in_(order_ids[start : start + size])
            )
        )
        orders.update({row.id: OrderFacts(row.number, row.channel, row.status, row.paid_at) for row in rows})
    found = [
        LeakedCode(
            code,
            orders.get(code.order_id) if code.order_id is not None else None,
            traced.reveals.get(code.order_id, []) if code.order_id is not None else [],
        )
        for code in traced.found
    ]
    return LeakReport(found, traced.unknown, traced.problems)
