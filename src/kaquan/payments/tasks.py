"""Outbox handlers of the payments module."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.payments import service


@outbox.handler("payments.refund")
async def refund_payment(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    await service.refund(db, session, payload["payment_id"])
