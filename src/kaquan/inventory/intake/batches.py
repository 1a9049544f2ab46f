"""Batches: one delivery of stock (a code file or a serial range) with its supplier, cost, expiry and warehouse."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog.service import Sku
from kaquan.inventory.errors import WarehouseNotFound
from kaquan.inventory.models import Batch, Warehouse
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, new_key
from kaquan.kit.errors import BadInput


@dataclass(frozen=True)
class BatchMeta:
    supplier: str = ""
    unit_cost_minor: int = 0
    expires_on: date | None = None
    warehouse: str = "main"
    source: str = ""

    def __post_init__(self) -> None:
        if self.unit_cost_minor < 0:
            raise BadInput("unit cost cannot be negative", unit_cost_minor=self.unit_cost_minor)


async def warehouse_id(session: AsyncSession, code: str) -> int:
    found = (await session.execute(select(Warehouse.id).where(Warehouse.code == code))).scalar_one_or_none()
    if found is None:
        raise WarehouseNotFound(f"no warehouse {code!r}", warehouse=code)
    return found


async def new_batch(
    session: AsyncSession,
    sku: Sku,
    meta: BatchMeta,
    *,
    kind: str,
    quantity: int,
    actor: str,
    keyring: KeyRing | None,
) -> Batch:
    batch = Batch(
        sku_id=sku.id,
        warehouse_id=await warehouse_id(session, meta.warehouse),
        kind=kind,
        supplier=meta.supplier,
        unit_cost_minor=meta.unit_cost_minor,
        currency=sku.currency,
        expires_on=meta.expires_on,
        wrapped_key=keyring.wrap(new_key()) if keyring else None,
        quantity=quantity,
        source=meta.source,
        created_by=actor,
        created_at=clock.now(),
    )
    session.add(batch)
    await session.flush()
    return batch
