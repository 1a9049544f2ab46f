"""Outbox handlers of the channels module."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.agents import ordering
from kaquan.kit import outbox
from kaquan.kit.db import Database


@outbox.handler(ordering.FULFIL_TOPIC)
async def fulfil_agent_order(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    await ordering.fulfil(db, session, int(payload["order_id"]))
