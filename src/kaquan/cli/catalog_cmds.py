"""`kaquan product …`, `kaquan sku …` and `kaquan catalog image …`."""

import json
from pathlib import Path
from typing import Annotated

import typer

from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, ProductKind, ProductOut, ProductUpdate, SkuCreate, SkuOut
from kaquan.cli.common import console, run
from kaquan.cli.output import JsonFlag, emit_json, money, show, table
from kaquan.runtime import Runtime

products = typer.Typer(help="Products: what the shop sells.", no_args_is_help=True)
catalog_app = typer.Typer(help="The shop's catalog content: product pictures.", no_args_is_help=True)
images = typer.Typer(help="Product pictures shown in the shop.", no_args_is_help=True)
catalog_app.add_typer(images, name="image")
skus = typer.Typer(help="SKUs: sellable variants with price, currency and code format.", no_args_is_help=True)
ACTOR = "cli"


@products.command("create")
def create_product(
    name: Annotated[str, typer.Option(help="display name")],
    kind: Annotated[ProductKind, typer.Option(help="membership, game_points, virtual_item, voucher or gift_card")],
    description: str = "",
    category: Annotated[str, typer.Option(help="the shop's category, e.g. 视频会员")] = "",
    usage: Annotated[str, typer.Option(help="how a buyer uses the code (使用说明)")] = "",
    validity: Annotated[str, typer.Option(help="how long a code stays good, e.g. 激活后 31 天")] = "",
    featured: Annotated[bool, typer.Option(help="show it under 精选推荐 on the home page")] = False,
    sort_order: Annotated[int, typer.Option(help="lower comes first in the shop")] = 0,
) -> None:
    try:
        data = ProductCreate(
            name=name,
            kind=kind,
            description=description,
            category=category,
            usage=usage,
            validity=validity,
            featured=featured,
            sort_order=sort_order,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            return (await catalog.create_product(session, data, actor=ACTOR)).id

    console.print(f"product {run(work)} created")


@products.command("list")
def list_products(as_json: JsonFlag = False) -> None:
    """Every product; --json prints the admin API's product objects."""

    async def work(rt: Runtime) -> list[ProductOut]:
        async with rt.db.read() as session:
            return [ProductOut.model_validate(p) for p in await catalog.list_products(session)]

    found = run(work)
    if as_json:
        emit_json([product.model_dump(mode="json") for product in found])
        return
    listed = table("id", "name", "kind", "category", "featured", "on sale")
    for product in found:
        listed.add_row(
            str(product.id),
            product.name,
            product.kind,
            product.category or "-",
            "yes" if product.featured else "no",
            "yes" if product.active else "no",
        )
    show(listed)


@products.command("set")
def update_product(
    product: Annotated[int, typer.Argument(help="product id")],
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option(help="the shop's category, e.g. 视频会员")] = None,
    usage: Annotated[str | None, typer.Option(help="how a buyer uses the code (使用说明)")] = None,
    validity: Annotated[str | None, typer.Option(help="how long a code stays good")] = None,
    featured: Annotated[bool | None, typer.Option("--featured/--not-featured")] = None,
    sort_order: Annotated[int | None, typer.Option(help="lower comes first in the shop")] = None,
    on_sale: Annotated[bool | None, typer.Option("--on-sale/--off-sale", help="shown in the shop or not")] = None,
) -> None:
    """Change what the shop shows of a product; options left out stay as they are."""
    try:
        data = ProductUpdate(
            name=name,
            description=description,
            category=category,
            usage=usage,
            validity=validity,
            featured=featured,
            sort_order=sort_order,
            active=on_sale,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await catalog.update_product(session, product, data, actor=ACTOR)

    run(work)
    console.print(f"product {product} updated")


@images.command("add")
def add_image(
    product: Annotated[int, typer.Argument(help="product id")],
    file: Annotated[Path, typer.Argument(help="a JPEG, PNG, WebP or GIF, at most 8 MiB", dir_okay=False)],
) -> None:
    """Upload a product picture: kaquan strips its metadata, resizes it and serves it on the product page."""
    try:
        with file.open("rb") as handle:
            data = handle.read(catalog_images.MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            return (await catalog_images.add_image(session, product, data, actor=ACTOR)).id

    console.print(f"image {run(work)} added to product {product}")


@images.command("remove")
def remove_image(image: Annotated[int, typer.Argument(help="image id")]) -> None:
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await catalog_images.remove_image(session, image, actor=ACTOR)

    run(work)
    console.print(f"image {image} removed")


@skus.command("create")
def create_sku(
    product: Annotated[int, typer.Option(help="product id")],
    code: Annotated[str, typer.Option(help="SKU code, e.g. VIDEO-1M")],
    name: Annotated[str, typer.Option()],
    price: Annotated[int, typer.Option(help="price in minor units (fen/cents)")],
    face_value: Annotated[int | None, typer.Option(help="face value in minor units; default: the price")] = None,
    cost: Annotated[int, typer.Option(help="cost in minor units")] = 0,
    currency: str = "CNY",
    stock_kind: Annotated[str, typer.Option(help="codes or segment")] = "codes",
    rule: Annotated[
        str, typer.Option(help='code format rule as JSON, e.g. {"min_length": 16, "alphabet": "upper_alnum"}')
    ] = "{}",
    encrypt_card_no: bool = False,
    max_per_order: int = 10,
) -> None:
    try:
        parsed_rule = CodeRule.model_validate(json.loads(rule))
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"--rule is not a valid code rule: {exc}") from None
    try:
        data = SkuCreate(
            product_id=product,
            code=code,
            name=name,
            currency=currency,
            face_value_minor=price if face_value is None else face_value,
            price_minor=price,
            cost_minor=cost,
            stock_kind=stock_kind,
            code_rule=parsed_rule,
            encrypt_card_no=encrypt_card_no,
            max_per_order=max_per_order,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            return (await catalog.create_sku(session, data, actor=ACTOR)).id

    console.print(f"SKU {code} created (id {run(work)})")


@skus.command("list")
def list_skus(as_json: JsonFlag = False) -> None:
    """Every SKU with its prices; --json prints the admin API's SKU objects (amounts as *_minor)."""

    async def work(rt: Runtime) -> list[SkuOut]:
        async with rt.db.read() as session:
            return [SkuOut.model_validate(s) for s in await catalog.list_skus(session)]

    found = run(work)
    if as_json:
        emit_json([sku.model_dump(mode="json") for sku in found])
        return
    listed = table("id", "product", "code", "name", "price", "face value", "cost", "stock", "per order", "on sale")
    for sku in found:
        listed.add_row(
            str(sku.id),
            str(sku.product_id),
            sku.code,
            sku.name,
            money(sku.price_minor, sku.currency),
            money(sku.face_value_minor, sku.currency),
            money(sku.cost_minor, sku.currency),
            sku.stock_kind,
            str(sku.max_per_order),
            "yes" if sku.active else "no",
        )
    show(listed)
