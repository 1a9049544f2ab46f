"""Products and SKUs in the console."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.kit.bounds import Id, Int32
from kaquan.web.console.access import CatalogRead, CatalogWrite
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get("/admin/products")
async def products(request: Request, rt: RuntimeDep, admin: CatalogRead) -> Response:
    async with rt.db.read() as session:
        found = await catalog.list_products(session)
        skus = await catalog.list_skus(session)
    return page(request, admin, "products.html", {"products": found, "skus": skus})


@router.post("/admin/products")
async def create_product(
    rt: RuntimeDep,
    admin: CatalogWrite,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=32)],
    description: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    data = form_model(ProductCreate, name=name, kind=kind, description=description)
    async with rt.db.transaction() as session:
        await catalog.create_product(session, data, actor=admin.actor)
    return RedirectResponse("/admin/products", status_code=303)


@router.post("/admin/skus")
async def create_sku(
    rt: RuntimeDep,
    admin: CatalogWrite,
    product_id: Annotated[Id, Form()],
    code: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
    face_value_minor: Annotated[Int32, Form()],
    price_minor: Annotated[Int32, Form()],
    currency: Annotated[str, Form(max_length=3)] = "CNY",
    cost_minor: Annotated[Int32, Form()] = 0,
    stock_kind: Annotated[str, Form(max_length=16)] = "codes",
    max_per_order: Annotated[Int32, Form()] = 10,
) -> Response:
    data = form_model(
        SkuCreate,
        product_id=product_id,
        code=code,
        name=name,
        currency=currency,
        face_value_minor=face_value_minor,
        price_minor=price_minor,
        cost_minor=cost_minor,
        stock_kind=stock_kind,
        max_per_order=max_per_order,
    )
    async with rt.db.transaction() as session:
        await catalog.create_sku(session, data, actor=admin.actor)
    return RedirectResponse("/admin/products", status_code=303)
