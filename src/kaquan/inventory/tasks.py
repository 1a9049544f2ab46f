"""Outbox handlers of the inventory module: a low-stock alert after a refill rule ran (logged, and raised to
the operator's channels once per interval: kit.alerts)."""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.refills import LOW_STOCK_TOPIC
from kaquan.kit import alerts, outbox
from kaquan.kit.db import Database

log = logging.getLogger("kaquan.notifications")


@outbox.handler(LOW_STOCK_TOPIC)
async def alert_low_stock(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    log.warning(
        "low stock: SKU %s has %s available in warehouse %s (threshold %s); %s moved from %s by refill rule %s",
        payload["sku_id"],
        payload["available"],
        payload["warehouse"],
        payload["threshold"],
        payload["moved"],
        payload["source_warehouse"],
        payload["rule_id"],
    )
    kind = "refill" if payload["moved"] else "low_stock"
    condition = f"sku:{payload['sku_id']}:warehouse:{payload['warehouse']}"
    await alerts.raise_alert(db, session, kind, condition, payload)
