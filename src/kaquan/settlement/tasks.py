"""The worker's settlement job: at each cycle's end, a draft statement for every counterparty with a rule.

A period that has a run already (draft or confirmed) is left alone, so the job is
safe on every worker pass; finance confirms the drafts.
"""

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.settlement import periods
from kaquan.settlement.models import SettlementRun
from kaquan.settlement.rules import rule_in_force, settled_counterparties
from kaquan.settlement.runs import create_run

log = logging.getLogger(__name__)
ACTOR = "worker"


async def _due(session: AsyncSession, counterparty: str) -> str | None:
    rule = await rule_in_force(session, counterparty)
    period = periods.last_closed_period(rule.cycle, clock.now(), rule.time_zone)
    if period.first_day < rule.effective_from:
        return None
    found = await session.execute(
        select(SettlementRun.id).where(
            SettlementRun.counterparty == counterparty,
            SettlementRun.period_start < period.end,
            SettlementRun.period_end > period.start,
        )
    )
    return None if found.first() is not None else period.label


async def run_due(db: Database) -> int:
    """Make the drafts that are due; returns how many were made."""
    async with db.read() as session:
        counterparties = await settled_counterparties(session)
    made = 0
    for counterparty in counterparties:
        async with db.read() as session:
            label = await _due(session, counterparty)
        if label is None:
            continue
        try:
            async with db.transaction() as session:
                await create_run(db, session, counterparty, label, actor=ACTOR)
            made += 1
        except DomainError as exc:  # a store or agent removed since, say: the others still run
            log.warning("settlement draft for %s %s not made: %s", counterparty, label, exc.message)
    return made
