"""Outbox handlers of the orders module (the buyer's notices are sent by kaquan.notifications)."""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database

log = logging.getLogger("kaquan.orders")


@outbox.handler("order.unfulfilled")
async def alert_unfulfilled(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    log.warning("order %s was paid after its hold lapsed and is sold out: refunding", payload["number"])
