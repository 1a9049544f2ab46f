"""Refill rules and the rebalance that applies them: stock moves to where it sells.

A rule says: when warehouse W holds fewer than `threshold` available units of a
SKU, move up to `refill_units` from warehouse S. Several rules may refill one W
(from different sources); they are tried in the order they were made, each
re-reading W's stock, so a second source is used only when the first fell short.
Every refill is recorded as a transfer and announced by an `inventory.low_stock`
outbox event; a warehouse that stays low with nothing left to move is announced
once, not on every pass.

Concurrency: a refill of (SKU, W) first locks every rule row of that pair, in id
order, and only then reads W's stock, so two workers never both act on the same
shortfall. Rules are disabled, never deleted, so the oldest rule of a pair is in
every set that is locked and the two refills run one after the other.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.inventory.claims import allocation
from kaquan.inventory.models import RefillRule, Warehouse
from kaquan.inventory.warehouses import SameWarehouse, get_warehouse, record_transfer
from kaquan.kit import clock, outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Busy, NotFound

log = logging.getLogger(__name__)

LOW_STOCK_TOPIC = "inventory.low_stock"
SCHEDULER = "scheduler"
REBALANCE_EVERY_S = 30.0
_last_rebalance: WeakKeyDictionary[Database, float] = WeakKeyDictionary()


class RuleNotFound(NotFound):
    code = "refill_rule_not_found"


class BadRule(BadInput):
    code = "bad_refill_rule"


@dataclass(frozen=True)
class Rule:
    """A refill rule, with its warehouses by code."""

    id: int
    sku_id: int
    warehouse: str
    source_warehouse: str
    threshold: int
    refill_units: int
    active: bool
    low_since: datetime | None


async def add_rule(
    db: Database,
    session: AsyncSession,
    sku_id: int,
    warehouse_id: int,
    source_warehouse_id: int,
    *,
    threshold: int,
    refill_units: int,
    actor: str,
    ip: str | None = None,
) -> Rule:
    """Refill `warehouse_id` from `source_warehouse_id`; adding a rule that exists updates and re-enables it."""
    if threshold <= 0 or refill_units <= 0:
        raise BadRule(
            f"threshold and refill units are positive (got {threshold} and {refill_units})",
            threshold=threshold,
            refill_units=refill_units,
        )
    if warehouse_id == source_warehouse_id:
        raise SameWarehouse("a warehouse cannot refill itself", warehouse=warehouse_id)
    sku = await catalog.get_sku(session, sku_id)
    target, source = await get_warehouse(session, warehouse_id), await get_warehouse(session, source_warehouse_id)
    route = (
        RefillRule.sku_id == sku.id,
        RefillRule.warehouse_id == target.id,
        RefillRule.source_warehouse_id == source.id,
    )
    values = {"threshold": threshold, "refill_units": refill_units, "active": True}
    inserted = await session.execute(
        db.insert(RefillRule.__table__)  # type: ignore[arg-type]
        .values(sku_id=sku.id, warehouse_id=target.id, source_warehouse_id=source.id, **values)
        .on_conflict_do_nothing(index_elements=["sku_id", "warehouse_id", "source_warehouse_id"])
        .returning(RefillRule.__table__.c.id)
    )
    created = inserted.scalar_one_or_none() is not None
    rule = (
        await session.execute(db.lock(select(RefillRule).where(*route)).execution_options(populate_existing=True))
    ).scalar_one()
    before = None if created else _audited(rule)
    if not created:
        rule.threshold, rule.refill_units, rule.active, rule.low_since = threshold, refill_units, True, None
        await session.flush()
    await audit.record(
        session,
        actor,
        "refill_rule.set",
        target=f"refill_rule:{rule.id}",
        before=before,
        after={"sku": sku.code, "warehouse": target.code, "source": source.code, **values},
        ip=ip,
    )
    return Rule(rule.id, sku.id, target.code, source.code, threshold, refill_units, True, None)


async def disable_rule(db: Database, session: AsyncSession, rule_id: int, *, actor: str, ip: str | None = None) -> Rule:
    """Stop a rule from refilling (it stays, for the transfers that name it)."""
    rule = (
        await session.execute(
            db.lock(select(RefillRule).where(RefillRule.id == rule_id)).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if rule is None:
        raise RuleNotFound(f"no refill rule {rule_id}", rule_id=rule_id)
    if rule.active:
        before = _audited(rule)
        rule.active, rule.low_since = False, None
        await session.flush()
        await audit.record(
            session, actor, "refill_rule.disabled", target=f"refill_rule:{rule.id}", before=before, after=_audited(rule)
        )
    [shown] = await list_rules(session, rule_id=rule.id)
    return shown


async def list_rules(session: AsyncSession, *, sku_id: int | None = None, rule_id: int | None = None) -> list[Rule]:
    target, source = aliased(Warehouse), aliased(Warehouse)
    stmt = (
        select(RefillRule, target.code, source.code)
        .join(target, target.id == RefillRule.warehouse_id)
        .join(source, source.id == RefillRule.source_warehouse_id)
        .order_by(RefillRule.id)
    )
    if sku_id is not None:
        stmt = stmt.where(RefillRule.sku_id == sku_id)
    if rule_id is not None:
        stmt = stmt.where(RefillRule.id == rule_id)
    return [
        Rule(r.id, r.sku_id, to_code, from_code, r.threshold, r.refill_units, r.active, r.low_since)
        for r, to_code, from_code in await session.execute(stmt)
    ]


def _audited(rule: RefillRule) -> dict[str, Any]:
    return {"threshold": rule.threshold, "refill_units": rule.refill_units, "active": rule.active}


async def rebalance_due(db: Database, *, every_s: float = REBALANCE_EVERY_S) -> int:
    """The worker's step: rebalance at most once every `every_s` seconds; returns the transfers made."""
    now = time.monotonic()
    last = _last_rebalance.get(db)
    if last is not None and now - last < every_s:
        return 0
    _last_rebalance[db] = now
    return len(await rebalance(db))


async def rebalance(db: Database) -> list[int]:
    """Apply every active rule whose warehouse is under its threshold; returns the ids of the transfers made.

    A cheap read finds the (SKU, warehouse) pairs to look at; each is then refilled in a
    transaction of its own. A pair another worker is refilling right now is left to it.
    """
    async with db.read() as session:
        due = await _due(session)
    transfers: list[int] = []
    for sku_id, warehouse_id in due:
        try:
            transfers += await db.run(partial(refill, db, sku_id=sku_id, warehouse_id=warehouse_id))
        except Busy:
            log.warning("refill of SKU %s in warehouse %s skipped: busy; next pass tries again", sku_id, warehouse_id)
    return transfers


async def _due(session: AsyncSession) -> list[tuple[int, int]]:
    """(SKU, warehouse) pairs with an active rule under its threshold, or one marked low that may have recovered."""
    rules = (await session.execute(select(RefillRule).where(RefillRule.active).order_by(RefillRule.id))).scalars()
    skus: dict[int, Sku] = {}
    due: set[tuple[int, int]] = set()
    for rule in rules:
        if (rule.sku_id, rule.warehouse_id) in due:
            continue
        if rule.sku_id not in skus:
            skus[rule.sku_id] = await catalog.get_sku(session, rule.sku_id)
        available = await _available_in(session, skus[rule.sku_id], rule.warehouse_id, rule.threshold)
        if available < rule.threshold or rule.low_since is not None:
            due.add((rule.sku_id, rule.warehouse_id))
    return sorted(due)


async def refill(db: Database, session: AsyncSession, *, sku_id: int, warehouse_id: int) -> list[int]:
    """Apply the rules that refill `warehouse_id` with a SKU, under their row locks; returns the transfer ids."""
    rules = list(
        (
            await session.execute(
                db.lock(
                    select(RefillRule)
                    .where(RefillRule.sku_id == sku_id, RefillRule.warehouse_id == warehouse_id)
                    .order_by(RefillRule.id)
                ).execution_options(populate_existing=True)
            )
        ).scalars()
    )
    sku = await catalog.get_sku(session, sku_id)
    target = await get_warehouse(session, warehouse_id)
    transfers: list[int] = []
    for rule in rules:
        if not rule.active:
            continue
        # Read under the lock: a refill that ran before ours has committed, and counts.
        available = await _available_in(session, sku, warehouse_id, rule.threshold)
        if available >= rule.threshold:
            rule.low_since = None
            continue
        source = await get_warehouse(session, rule.source_warehouse_id)
        moved = await allocation.relocate(
            db, session, sku, rule.refill_units, source=source.id, target=target.id, exact=False
        )
        if moved:
            reason = f"refill rule {rule.id}: {available} available, threshold {rule.threshold}"
            transfer = await record_transfer(
                session, sku.id, source, target, moved, actor=SCHEDULER, reason=reason, rule_id=rule.id
            )
            transfers.append(transfer.id)
        if moved or rule.low_since is None:
            await outbox.enqueue(
                session,
                LOW_STOCK_TOPIC,
                {
                    "sku_id": sku.id,
                    "warehouse": target.code,
                    "available": available,
                    "threshold": rule.threshold,
                    "moved": moved,
                    "source_warehouse": source.code,
                    "rule_id": rule.id,
                },
            )
        rule.low_since = (rule.low_since or clock.now()) if available + moved < rule.threshold else None
    await session.flush()
    return transfers


async def _available_in(session: AsyncSession, sku: Sku, warehouse_id: int, threshold: int) -> int:
    """A warehouse's available units, counted no further than the threshold they are compared with."""
    return await allocation.available_units(session, sku, warehouses=[warehouse_id], at_most=threshold)
