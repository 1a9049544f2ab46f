"""Test builders for vouchers: a voucher SKU, issued codes, sold or not."""

import secrets
from datetime import date

from sqlalchemy import func, select
from tests.support.builders import GivenSku

from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.inventory.intake import importing
from kaquan.inventory.lifecycle import transition
from kaquan.inventory.models import Code
from kaquan.kit import clock
from kaquan.kit.outbox import OutboxEvent
from kaquan.redemption import vouchers
from kaquan.redemption.models import Redemption
from kaquan.runtime import Runtime


async def given_voucher_sku(rt: Runtime, *, code: str | None = None) -> GivenSku:
    code = code or f"VOUCHER-{secrets.token_hex(3).upper()}"
    async with rt.db.transaction() as session:
        product = await catalog.create_product(
            session, ProductCreate(name=f"Voucher {code}", kind="voucher"), actor="test"
        )
        sku = await catalog.create_sku(
            session,
            SkuCreate(product_id=product.id, code=code, name=code, face_value_minor=5000, price_minor=5000),
            actor="test",
        )
        return GivenSku(sku.id, sku.code)


async def given_vouchers(
    rt: Runtime,
    sku: GivenSku,
    count: int = 1,
    *,
    sold: bool = True,
    order_id: int = 4242,
    expires_on: date | None = None,
) -> list[str]:
    """Issue `count` vouchers (canonical codes); sold to `order_id` unless `sold=False`."""
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.id)
        batch = await vouchers.generate(
            rt.db,
            session,
            rt.vault,
            target,
            count,
            actor="test",
            meta=importing.BatchMeta(expires_on=expires_on),
        )
        if sold:
            await transition(
                session,
                Code,
                Code.batch_id == batch.batch_id,
                source="available",
                target="sold",
                expected=count,
                order_id=order_id,
                sold_at=clock.now(),
            )
    return batch.codes


async def status_of(rt: Runtime, code: str) -> str:
    async with rt.db.read() as session:
        fingerprint = rt.vault.fingerprints.of(None, code)
        return (await session.execute(select(Code.status).where(Code.fingerprint == fingerprint))).scalar_one()


async def redemption_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(Redemption))).scalar_one()


async def events(rt: Runtime, topic: str = "voucher.redeemed") -> list[OutboxEvent]:
    async with rt.db.read() as session:
        return list((await session.execute(select(OutboxEvent).where(OutboxEvent.topic == topic))).scalars())
