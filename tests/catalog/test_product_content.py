"""What the shop shows of a product: set once, changed field by field, every change in the audit trail."""

import pytest
from pydantic import ValidationError
from tests.support.builders import given_sku

from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.catalog.errors import ProductNotFound
from kaquan.catalog.schemas import ProductCreate, ProductUpdate
from kaquan.runtime import Runtime


async def test_a_change_touches_only_the_fields_given_and_is_audited_with_old_and_new(rt: Runtime) -> None:
    sku = await given_sku(rt)
    async with rt.db.transaction() as session:
        await catalog.update_product(
            session, sku.product_id, ProductUpdate(category="影音会员", usage="输入卡密"), actor="alice"
        )
    async with rt.db.transaction() as session:
        product = await catalog.update_product(session, sku.product_id, ProductUpdate(featured=True), actor="bob")
        last = (await audit.recent(session, limit=1))[0]

    assert (product.category, product.usage, product.featured, product.validity) == ("影音会员", "输入卡密", True, "")
    assert (last.actor, last.action, last.target) == ("bob", "product.updated", f"product:{sku.product_id}")
    assert (last.before, last.after) == ({"featured": False}, {"featured": True})


async def test_the_shop_lists_products_on_sale_featured_first_then_by_sort_order(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        made = [
            await catalog.create_product(session, ProductCreate(name=name, kind="voucher", **extra), actor="t")
            for name, extra in [
                ("late", {"sort_order": 5}),
                ("early", {"sort_order": -5}),
                ("featured", {"featured": True, "sort_order": 9}),
                ("off", {}),
            ]
        ]
        await catalog.update_product(session, made[3].id, ProductUpdate(active=False), actor="t")
        shown = [product.name for product in await catalog.shop_products(session)]

    assert shown == ["featured", "early", "late"]


async def test_an_unknown_product_is_not_found(rt: Runtime) -> None:
    with pytest.raises(ProductNotFound):
        async with rt.db.transaction() as session:
            await catalog.update_product(session, 424242, ProductUpdate(featured=True), actor="t")


@pytest.mark.parametrize(
    "fields",
    [{"name": ""}, {"category": "x" * 65}, {"sort_order": 10**7}, {"usage": "x" * 4001}, {"price": 1}],
    ids=["empty-name", "long-category", "huge-order", "long-usage", "unknown-field"],
)
def test_a_change_out_of_bounds_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ProductUpdate.model_validate(fields)
