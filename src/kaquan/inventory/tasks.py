"""Outbox handlers of the inventory module: a redeemed voucher is told to the channel that sold it.

Channels come with a later issue; until then the notification is a log line
carrying the order id the channel will be found by.
"""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.redemption import REDEEMED_TOPIC
from kaquan.inventory.scheduling import LOW_STOCK_TOPIC
from kaquan.kit import outbox
from kaquan.kit.db import Database

log = logging.getLogger("kaquan.notifications")


@outbox.handler(REDEEMED_TOPIC)
async def notify_redeemed(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    log.info(
        "notify the selling channel of order %s: voucher %s redeemed at %s (%s)%s",
        payload["order_id"],
        payload["code_id"],
        payload["location"],
        payload["redeemed_at"],
        " offline" if payload["offline"] else "",
    )


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
