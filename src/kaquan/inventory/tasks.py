"""Outbox handlers of the inventory module: a low-stock alert after a refill rule ran."""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.refills import LOW_STOCK_TOPIC
from kaquan.kit import outbox
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
