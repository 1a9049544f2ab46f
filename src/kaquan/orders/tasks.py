"""Outbox handlers of the orders module: buyer notifications (a log sink until a mailer exists)."""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database

log = logging.getLogger("kaquan.notifications")


@outbox.handler("order.delivered")
async def notify_delivered(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    if payload.get("resend"):
        log.info("notify buyer: order %s delivered (sent again)", payload["number"])
        return
    log.info("notify buyer: order %s delivered", payload["number"])


@outbox.handler("order.refunded")
async def notify_refunded(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    log.info(
        "notify buyer: order %s refunded %s %s", payload["number"], payload.get("amount_minor"), payload.get("currency")
    )


@outbox.handler("order.unfulfilled")
async def alert_unfulfilled(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    log.warning("order %s was paid after its hold lapsed and is sold out: refunding", payload["number"])
