"""Outbox handlers of the redemption module: a redeemed voucher is told to the channel that sold it.

No channel is told yet: the notification is a log line carrying the order id
the selling channel will be found by.
"""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.redemption.redeeming import REDEEMED_TOPIC

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
