"""Create and read products and SKUs."""

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.categories import ensure_category
from kaquan.catalog.errors import ProductNotFound, SkuCodeTaken, SkuNotFound
from kaquan.catalog.models import Product as Product
from kaquan.catalog.models import Sku as Sku
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, ProductUpdate, SkuCreate, SkuUpdate
from kaquan.kit import clock
from kaquan.kit.bounds import INT32_MAX, id_from_text
from kaquan.kit.money import Money
from kaquan.kit.shortcache import ShortCache

_for_sale: ShortCache[Sku] = ShortCache()


async def create_product(session: AsyncSession, data: ProductCreate, *, actor: str) -> Product:
    product = Product(**data.model_dump(), active=True, created_at=clock.now())
    session.add(product)
    await session.flush()
    await ensure_category(session, data.category)
    await audit.record(session, actor, "product.created", target=f"product:{product.id}", after={"name": data.name})
    return product


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id) if 1 <= product_id <= INT32_MAX else None
    if product is None:
        raise ProductNotFound(product_id)
    return product


async def update_product(session: AsyncSession, product_id: int, data: ProductUpdate, *, actor: str) -> Product:
    """Change what the shop shows of a product; the audit trail keeps the old and the new values."""
    product = await get_product(session, product_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    before = {field: getattr(product, field) for field in changes}
    for field, value in changes.items():
        setattr(product, field, value)
    await session.flush()
    await ensure_category(session, product.category)
    await audit.record(session, actor, "product.updated", target=f"product:{product.id}", before=before, after=changes)
    return product


async def create_sku(session: AsyncSession, data: SkuCreate, *, actor: str) -> Sku:
    if await session.get(Product, data.product_id) is None:
        raise ProductNotFound(data.product_id)
    sku = Sku(
        product_id=data.product_id,
        code=data.code,
        name=data.name,
        currency=data.currency,
        face_value_minor=data.face_value_minor,
        price_minor=data.price_minor,
        cost_minor=data.cost_minor,
        stock_kind=data.stock_kind,
        code_rule=data.code_rule.model_dump(exclude_none=True),
        encrypt_card_no=data.encrypt_card_no,
        max_per_order=data.max_per_order,
        active=True,
        created_at=clock.now(),
    )
    try:
        async with session.begin_nested():
            session.add(sku)
    except IntegrityError:
        raise SkuCodeTaken(data.code) from None
    await audit.record(
        session,
        actor,
        "sku.created",
        target=f"sku:{sku.id}",
        after={"code": sku.code, "price_minor": sku.price_minor, "currency": sku.currency},
    )
    return sku


async def update_sku(session: AsyncSession, sku_ref: int | str, data: SkuUpdate, *, actor: str) -> Sku:
    """Change a SKU's price, name, limits, or take it off sale; the audit trail keeps the old and the new values."""
    sku = await get_sku(session, sku_ref)
    _for_sale.clear()
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True, exclude_none=True).items()
        if getattr(sku, field) != value
    }
    if not changes:
        return sku
    before = {field: getattr(sku, field) for field in changes}
    for field, value in changes.items():
        setattr(sku, field, value)
    await session.flush()
    await audit.record(
        session, actor, "sku.updated", target=f"sku:{sku.id}", before={"code": sku.code, **before}, after=changes
    )
    return sku


async def sku_codes(session: AsyncSession, sku_ids: Iterable[int]) -> dict[int, str]:
    """The code of each SKU named by id (unknown ids are left out)."""
    ids = set(sku_ids)
    if not ids:
        return {}
    rows = await session.execute(select(Sku.id, Sku.code).where(Sku.id.in_(ids)))
    return {sku_id: code for sku_id, code in rows.tuples()}


async def get_sku(session: AsyncSession, sku_ref: int | str) -> Sku:
    """A SKU by id or by its code; an id no row can have (0, past 32 bits) is simply not found."""
    if isinstance(sku_ref, int):
        sku = await session.get(Sku, sku_ref) if 1 <= sku_ref <= INT32_MAX else None
    elif (sku_id := id_from_text(sku_ref)) is not None:
        sku = await session.get(Sku, sku_id)
    else:
        sku = (await session.execute(select(Sku).where(Sku.code == sku_ref))).scalar_one_or_none()
    if sku is None:
        raise SkuNotFound(sku_ref)
    return sku


async def sku_for_sale(session: AsyncSession, sku_ref: int | str) -> Sku:
    """`get_sku` for the sale path: a detached copy, read at most `kit.shortcache.TTL_S` ago by this process.

    A storm's buyers all read the same SKU; a change through `update_sku` shows at once in this process
    and within the bound in the others. Read-only: change a SKU through `get_sku`.
    """
    cached = _for_sale.get(session, sku_ref)
    if cached is not None:
        return cached
    sku = await get_sku(session, sku_ref)
    copy = Sku(**{column.key: getattr(sku, column.key) for column in Sku.__table__.columns})
    _for_sale.put(session, sku_ref, copy)
    return copy


def price_of(sku: Sku) -> Money:
    return Money(sku.price_minor, sku.currency)


def rule_of(sku: Sku) -> CodeRule:
    return CodeRule.model_validate(sku.code_rule)


async def list_products(session: AsyncSession) -> list[Product]:
    return list((await session.execute(select(Product).order_by(Product.id))).scalars())


async def shop_products(session: AsyncSession) -> list[Product]:
    """The products on sale, in the order the shop shows them: featured first, then by sort order and id."""
    stmt = (
        select(Product)
        .where(Product.active.is_(True))
        .order_by(Product.featured.desc(), Product.sort_order, Product.id)
    )
    return list((await session.execute(stmt)).scalars())


async def list_skus(session: AsyncSession, *, active_only: bool = False) -> list[Sku]:
    stmt = select(Sku).order_by(Sku.product_id, Sku.id)
    if active_only:
        stmt = stmt.where(Sku.active.is_(True))
    return list((await session.execute(stmt)).scalars())
