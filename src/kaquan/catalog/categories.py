"""The shop's categories: a list the operator keeps, and the name each product carries.

A product names its category as text (what the shop filters by); this list lets a category
exist before its first product and be renamed in one step, its products following.
"""

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.errors import CategoryNameTaken, CategoryNotFound
from kaquan.catalog.models import Category, Product
from kaquan.kit import clock
from kaquan.kit.bounds import INT32_MAX


@dataclass(frozen=True)
class CategoryRow:
    id: int
    name: str
    products: int


async def list_categories(session: AsyncSession) -> list[CategoryRow]:
    """Every category by name, with how many products name it."""
    grouped = await session.execute(select(Product.category, func.count()).group_by(Product.category))
    counts = {name: count for name, count in grouped}
    rows = (await session.execute(select(Category).order_by(Category.name))).scalars()
    return [CategoryRow(c.id, c.name, counts.get(c.name, 0)) for c in rows]


async def ensure_category(session: AsyncSession, name: str) -> None:
    """Keep `name` on the list (a product was just given it); an empty name is no category."""
    if name and await session.scalar(select(Category.id).where(Category.name == name)) is None:
        await _insert(session, name)


async def create_category(session: AsyncSession, name: str, *, actor: str) -> Category:
    if await session.scalar(select(Category.id).where(Category.name == name)) is not None:
        raise CategoryNameTaken(name)
    category = await _insert(session, name)
    await audit.record(session, actor, "category.created", target=f"category:{category.id}", after={"name": name})
    return category


async def rename_category(session: AsyncSession, category_id: int, name: str, *, actor: str) -> Category:
    """Rename a category and every product in it, in one step."""
    category = await session.get(Category, category_id) if 1 <= category_id <= INT32_MAX else None
    if category is None:
        raise CategoryNotFound(category_id)
    old = category.name
    if name == old:
        return category
    if await session.scalar(select(Category.id).where(Category.name == name)) is not None:
        raise CategoryNameTaken(name)
    category.name = name
    moved = await session.execute(
        update(Product)
        .where(Product.category == old)
        .values(category=name)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await audit.record(
        session,
        actor,
        "category.renamed",
        target=f"category:{category.id}",
        before={"name": old},
        after={"name": name, "products": moved.rowcount},  # type: ignore[attr-defined]
    )
    return category


async def _insert(session: AsyncSession, name: str) -> Category:
    category = Category(name=name, created_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(category)
    except IntegrityError:
        raise CategoryNameTaken(name) from None
    return category
