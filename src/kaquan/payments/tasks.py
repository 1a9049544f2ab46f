"""Outbox handlers of the payments module: refunds to send, trades to close."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.payments import refunds, sweeps
from kaquan.payments.models import PaymentRefund


@outbox.handler(refunds.TOPIC)
async def refund_payment(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    if "refund_id" in payload:
        await refunds.process(db, session, payload["refund_id"])
        return
    # Queued before refunds had records of their own: the payment's requested refund (made by the migration).
    stmt = select(PaymentRefund.id).where(PaymentRefund.payment_id == payload["payment_id"]).order_by(PaymentRefund.id)
    for refund_id in (await session.execute(stmt)).scalars():
        await refunds.process(db, session, refund_id)


@outbox.handler(sweeps.CLOSE_TOPIC)
async def close_trade(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    await sweeps.close(db, session, payment_id=payload["payment_id"])
