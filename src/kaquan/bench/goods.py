"""A bench's goods: a SKU of its own, stocked with generated codes, in the caller's transaction."""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.bench.harness import generated_file
from kaquan.catalog import service as catalog
from kaquan.catalog.models import Sku
from kaquan.catalog.schemas import SkuCreate
from kaquan.inventory import importing
from kaquan.runtime import Runtime


async def stocked_sku(
    rt: Runtime,
    session: AsyncSession,
    *,
    product_id: int,
    code: str,
    price_minor: int,
    codes: int,
    actor: str,
    unit_cost_minor: int = 0,
) -> Sku:
    """A SKU named by its `code`, priced at face value, holding `codes` freshly generated codes."""
    sku = await catalog.create_sku(
        session,
        SkuCreate(product_id=product_id, code=code, name=code, face_value_minor=price_minor, price_minor=price_minor),
        actor=actor,
    )
    meta = importing.BatchMeta(supplier=actor, unit_cost_minor=unit_cost_minor)
    await importing.import_file(rt.db, session, rt.vault, sku, generated_file(codes), meta, actor=actor)
    return sku
