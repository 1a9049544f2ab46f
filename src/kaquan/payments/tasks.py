"""Outbox handlers of the payments module."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.payments import registry, service
from kaquan.payments.models import Payment


@outbox.handler("payments.refund")
async def refund_payment(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    payment = await session.get(Payment, payload["payment_id"])
    assert payment is not None
    await service.refund(db, session, registry.get(payment.gateway), payment.id)
