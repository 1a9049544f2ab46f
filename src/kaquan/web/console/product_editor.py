"""One product in the console: what the shop shows of it, its pictures, on or off sale, and each SKU's price.

Every change goes through the catalog service, which audits it; amounts are typed as a person
reads them (`19.90`) and kept in minor units.
"""

from typing import Annotated, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from kaquan.catalog import categories
from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductUpdate, SkuUpdate
from kaquan.kit.bounds import Id
from kaquan.kit.money import Money
from kaquan.web.console.access import CatalogRead, CatalogWrite
from kaquan.web.console.catalog import amount
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import RuntimeDep

router = console_router()

Text200 = Annotated[str, Form(max_length=200)]
Text4000 = Annotated[str, Form(max_length=4000)]


def typed(minor: int, currency: str) -> str:
    """An amount as an operator types it back in: `19.90`, no symbol, no separators."""
    return Money(minor, currency).format().split(" ", 1)[1]


def _to_product(product_id: int, anchor: str = "") -> Response:
    return RedirectResponse(f"/admin/products/{product_id}{anchor}", status_code=303)


@router.get("/admin/products/{product_id}")
async def product_page(request: Request, rt: RuntimeDep, admin: CatalogRead, product_id: Id) -> Response:
    async with rt.db.read() as session:
        product = await catalog.get_product(session, product_id)
        skus = [sku for sku in await catalog.list_skus(session) if sku.product_id == product_id]
        pictures = (await catalog_images.images_of(session, [product_id])).get(product_id, [])
        named = await categories.list_categories(session)
    context = {
        "product": product,
        "skus": skus,
        "images": pictures,
        "categories": named,
        "typed": typed,
    }
    return page(request, admin, "product.html", context)


@router.post("/admin/products/{product_id}")
async def update_product(
    rt: RuntimeDep,
    admin: CatalogWrite,
    product_id: Id,
    name: Text200,
    description: Text4000 = "",
    usage: Text4000 = "",
    validity: Text200 = "",
    delivery_promise: Text200 = "",
    category: Annotated[str, Form(max_length=64)] = "",
    featured: Annotated[bool, Form()] = False,
    sort_order: Annotated[int, Form(ge=-1_000_000, le=1_000_000)] = 0,
) -> Response:
    """The whole form is sent: a field left empty is emptied, an unticked box is off."""
    data = form_model(
        ProductUpdate,
        name=name.strip(),
        description=description,
        usage=usage,
        validity=validity,
        delivery_promise=delivery_promise,
        category=category.strip(),
        featured=featured,
        sort_order=sort_order,
    )
    async with rt.db.transaction() as session:
        await catalog.update_product(session, product_id, data, actor=admin.actor)
    return _to_product(product_id)


@router.post("/admin/products/{product_id}/sale")
async def product_sale(
    rt: RuntimeDep, admin: CatalogWrite, product_id: Id, on_sale: Annotated[Literal["on", "off"], Form()]
) -> Response:
    """Put the product on sale or take it off: the shop stops listing it, its SKUs keep their own switch."""
    async with rt.db.transaction() as session:
        await catalog.update_product(session, product_id, ProductUpdate(active=on_sale == "on"), actor=admin.actor)
    return _to_product(product_id)


@router.post("/admin/products/{product_id}/images")
async def add_image(
    rt: RuntimeDep, admin: CatalogWrite, product_id: Id, file: Annotated[UploadFile, File()]
) -> Response:
    """The same upload as the admin API: checked, stripped of metadata, stored at a few widths."""
    data = await file.read(catalog_images.MAX_IMAGE_BYTES + 1)
    async with rt.db.transaction() as session:
        await catalog_images.add_image(session, product_id, data, actor=admin.actor)
    return _to_product(product_id, "#images")


@router.post("/admin/images/{image_id}/move")
async def move_image(
    rt: RuntimeDep, admin: CatalogWrite, image_id: Id, to: Annotated[Literal["earlier", "later"], Form()]
) -> Response:
    async with rt.db.transaction() as session:
        step: Literal[-1, 1] = -1 if to == "earlier" else 1
        product_id = await catalog_images.move_image(session, image_id, step, actor=admin.actor)
    return _to_product(product_id, "#images")


@router.post("/admin/images/{image_id}/remove")
async def remove_image(rt: RuntimeDep, admin: CatalogWrite, image_id: Id) -> Response:
    async with rt.db.transaction() as session:
        product_id = await catalog_images.remove_image(session, image_id, actor=admin.actor)
    return _to_product(product_id, "#images")


@router.post("/admin/skus/{sku}")
async def update_sku(
    rt: RuntimeDep,
    admin: CatalogWrite,
    sku: str,
    name: Text200,
    price: Annotated[str, Form(max_length=32)],
    face_value: Annotated[str, Form(max_length=32)],
    cost: Annotated[str, Form(max_length=32)],
    max_per_order: Annotated[int, Form(ge=1, le=100_000)],
    active: Annotated[bool, Form()] = False,
) -> Response:
    """A SKU's row on the product page: its price and amounts in its currency, its limit, on sale or not."""
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku)
        currency = target.currency
        data = form_model(
            SkuUpdate,
            name=name.strip(),
            price_minor=amount(price, currency, "price"),
            face_value_minor=amount(face_value, currency, "face_value"),
            cost_minor=amount(cost, currency, "cost"),
            max_per_order=max_per_order,
            active=active,
        )
        updated = await catalog.update_sku(session, target.id, data, actor=admin.actor)
    return _to_product(updated.product_id, f"#sku-{updated.code}")
