"""`kaquan product …` and `kaquan sku …`."""

import json
from typing import Annotated

import typer

from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, ProductKind, SkuCreate, SkuOut
from kaquan.cli.common import console, dump, run
from kaquan.runtime import Runtime

products = typer.Typer(help="Products: what the shop sells.", no_args_is_help=True)
skus = typer.Typer(help="SKUs: sellable variants with price, currency and code format.", no_args_is_help=True)
ACTOR = "cli"


@products.command("create")
def create_product(
    name: Annotated[str, typer.Option(help="display name")],
    kind: Annotated[ProductKind, typer.Option(help="membership, game_points, virtual_item, voucher or gift_card")],
    description: str = "",
) -> None:
    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            product = await catalog.create_product(
                session, ProductCreate(name=name, kind=kind, description=description), actor=ACTOR
            )
            return product.id

    console.print(f"product {run(work)} created")


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
def list_skus() -> None:
    async def work(rt: Runtime) -> list[dict[str, object]]:
        async with rt.db.read() as session:
            return [SkuOut.model_validate(s).model_dump(mode="json") for s in await catalog.list_skus(session)]

    dump(run(work))
