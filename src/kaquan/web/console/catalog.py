"""Products and SKUs in the console: the list, creating them, and the list as a download."""

from typing import Annotated, Literal

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.catalog import categories
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.kit.bounds import Id, Int32
from kaquan.kit.errors import BadInput
from kaquan.kit.money import display, parse_amount, supported_currencies
from kaquan.kit.tables import Cell, Format, Table
from kaquan.web.console.access import CatalogRead, CatalogWrite
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator

router = console_router()


def amount(text: str, currency: str, field: str) -> int:
    """An amount typed in a form field, in minor units; a bad one is refused naming its field."""
    try:
        return parse_amount(text, currency)
    except BadInput as bad:
        raise BadInput(f"{field}: {bad.message} (not {text!r})", field=field) from None


@router.get("/admin/products")
async def products(request: Request, rt: RuntimeDep, admin: CatalogRead) -> Response:
    async with rt.db.read() as session:
        found = await catalog.list_products(session)
        skus = await catalog.list_skus(session)
        named = await categories.list_categories(session)
    context = {"products": found, "skus": skus, "categories": named, "currencies": supported_currencies()}
    return page(request, admin, "products.html", context)


@router.get("/admin/skus/export", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def export_skus(request: Request, rt: RuntimeDep, admin: CatalogRead, format: Format = "csv") -> Response:
    """Every SKU with its product: what is sold, at which price, on sale or not."""
    t = translator(language(request))
    async with rt.db.read() as session:
        by_id = {product.id: product for product in await catalog.list_products(session)}
        skus = await catalog.list_skus(session)

    def on_sale(active: bool) -> str:
        return t("cat.sale.on") if active else t("cat.sale.off")

    header = [
        t("field.product"),
        t("field.name"),
        t("cat.category.one"),
        t("cat.sale.product"),
        t("field.code"),
        t("cat.sku.name"),
        t("field.price"),
        t("cat.sku.face_value"),
        t("cat.sku.cost"),
        t("field.max_per_order"),
        t("field.stock_kind"),
        t("cat.sale.sku"),
    ]
    rows: list[list[Cell]] = [
        [
            sku.product_id,
            by_id[sku.product_id].name,
            by_id[sku.product_id].category,
            on_sale(by_id[sku.product_id].active),
            sku.code,
            sku.name,
            display(sku.price_minor, sku.currency),
            display(sku.face_value_minor, sku.currency),
            display(sku.cost_minor, sku.currency),
            sku.max_per_order,
            t(f"cat.stock_kind.{sku.stock_kind}"),
            on_sale(sku.active),
        ]
        for sku in skus
    ]
    return table_download(Table(t("products.title"), header, rows), format, "skus")


@router.post("/admin/products")
async def create_product(
    rt: RuntimeDep,
    admin: CatalogWrite,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=32)],
    description: Annotated[str, Form(max_length=4000)] = "",
    category: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    data = form_model(ProductCreate, name=name, kind=kind, description=description, category=category.strip())
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, data, actor=admin.actor)
    return RedirectResponse(f"/admin/products/{product.id}", status_code=303)


@router.post("/admin/skus")
async def create_sku(
    rt: RuntimeDep,
    admin: CatalogWrite,
    product_id: Annotated[Id, Form()],
    code: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
    face_value: Annotated[str, Form(max_length=32)],
    price: Annotated[str, Form(max_length=32)],
    currency: Annotated[str, Form(max_length=3)] = "CNY",
    cost: Annotated[str, Form(max_length=32)] = "0",
    stock_kind: Annotated[Literal["codes", "segment"], Form()] = "codes",
    max_per_order: Annotated[Int32, Form()] = 10,
) -> Response:
    """Amounts are typed as a person reads them (`19.90`), in the SKU's currency."""
    data = form_model(
        SkuCreate,
        product_id=product_id,
        code=code,
        name=name,
        currency=currency,
        face_value_minor=amount(face_value, currency, "face_value"),
        price_minor=amount(price, currency, "price"),
        cost_minor=amount(cost or "0", currency, "cost"),
        stock_kind=stock_kind,
        max_per_order=max_per_order,
    )
    async with rt.db.transaction() as session:
        await catalog.create_sku(session, data, actor=admin.actor)
    return RedirectResponse(f"/admin/products/{product_id}", status_code=303)
