"""The catalog in the console: a product's editor, SKU prices typed in yuan, sale switches, images,
categories, and the SKU list as CSV and XLSX. Every edit is refused to a role without catalog.write,
and bad input is a clear error that changes nothing."""

import csv
import io

import httpx
import pytest
from openpyxl import load_workbook
from tests.support.builders import GivenSku, given_sku
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user, row_counts
from tests.support.images import photo

from kaquan.audit import service as audit
from kaquan.catalog import categories
from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import SkuCreate
from kaquan.runtime import Runtime

SKU_FORM = {"name": "月卡", "face_value": "30", "cost": "15.00", "max_per_order": "5"}


async def operator(rt: Runtime, client: httpx.AsyncClient, role: str = "operator") -> Console:
    await given_user(rt, role, role)
    return await console_sign_in(client, role)


async def sku_row(rt: Runtime, code: str) -> catalog.Sku:
    async with rt.db.read() as session:
        return await catalog.get_sku(session, code)


async def test_an_operator_sets_a_price_in_yuan_and_takes_the_sku_off_sale_audited(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku(rt, code="ED-1", price_minor=1990)
    console = await operator(rt, client)

    saved = await console.post("/admin/skus/ED-1", {**SKU_FORM, "price": "¥1,025.50"})

    assert saved.status_code == 303
    assert saved.headers["location"] == f"/admin/products/{sku.product_id}#sku-ED-1"
    after = await sku_row(rt, "ED-1")
    assert (after.price_minor, after.face_value_minor, after.cost_minor, after.active) == (102550, 3000, 1500, False)
    async with rt.db.read() as session:
        [entry] = [e for e in await audit.recent(session, limit=5) if e.action == "sku.updated"]
    assert (entry.actor, entry.target) == ("operator", f"sku:{sku.id}")
    assert entry.before is not None and entry.after is not None
    assert (entry.before["price_minor"], entry.after["price_minor"]) == (1990, 102550)
    assert (entry.before["active"], entry.after["active"]) == (True, False)
    page = await console.get(f"/admin/products/{sku.product_id}")
    assert 'value="1025.50"' in page.text
    assert "已下架" in page.text


async def test_the_shop_shows_the_new_price_and_drops_a_sku_taken_off_sale(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    kept = await given_sku(rt, code="SHOP-A", price_minor=1990)
    console = await operator(rt, client)
    async with rt.db.transaction() as session:
        await catalog.create_sku(
            session,
            SkuCreate(product_id=kept.product_id, code="SHOP-B", name="SHOP-B", face_value_minor=1, price_minor=1),
            actor="test",
        )

    await console.post("/admin/skus/SHOP-A", {**SKU_FORM, "price": "12.30", "active": "true"})
    await console.post("/admin/skus/SHOP-B", {**SKU_FORM, "price": "1"})

    shop = await client.get(f"/products/{kept.product_id}")
    assert "¥12.30" in shop.text
    assert 'data-sku="SHOP-A"' in shop.text
    assert 'data-sku="SHOP-B"' not in shop.text


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/skus/RO-1", {**SKU_FORM, "price": "1.00"}),
        ("/admin/products/{product}", {"name": "改名"}),
        ("/admin/products/{product}/sale", {"on_sale": "off"}),
        ("/admin/categories", {"name": "新分类"}),
    ],
)
async def test_a_role_without_catalog_write_is_refused_and_nothing_changes(
    rt: Runtime, client: httpx.AsyncClient, path: str, form: dict[str, str]
) -> None:
    sku = await given_sku(rt, code="RO-1")
    console = await operator(rt, client, "support")
    before = await row_counts(rt)

    refused = await console.post(path.format(product=sku.product_id), form)

    assert refused.status_code == 403
    assert "catalog.write" in refused.text
    assert await row_counts(rt) == before
    assert (await sku_row(rt, "RO-1")).price_minor == 1990


@pytest.mark.parametrize(
    ("path", "form", "status", "words"),
    [
        ("/admin/skus/BAD-1", {**SKU_FORM, "price": "19.9.9"}, 400, "price"),
        ("/admin/skus/BAD-1", {**SKU_FORM, "price": "19.999"}, 400, "at most 2 decimals"),
        ("/admin/skus/BAD-1", {**SKU_FORM, "price": "-5"}, 400, "price"),
        ("/admin/skus/BAD-1", {**SKU_FORM, "price": "1", "name": "   "}, 400, "name"),
        ("/admin/skus/NO-SUCH-SKU", {**SKU_FORM, "price": "1"}, 404, "NO-SUCH-SKU"),
        ("/admin/products/{product}", {"name": " "}, 400, "name"),
        ("/admin/products/999999", {"name": "x"}, 404, "999999"),
        ("/admin/categories", {"name": "  "}, 400, "name"),
    ],
)
async def test_bad_input_is_a_clear_error_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, path: str, form: dict[str, str], status: int, words: str
) -> None:
    sku = await given_sku(rt, code="BAD-1")
    console = await operator(rt, client)
    before = await row_counts(rt)

    refused = await console.post(path.format(product=sku.product_id), form)

    assert refused.status_code == status
    assert words in refused.text
    assert await row_counts(rt) == before
    after = await sku_row(rt, "BAD-1")
    assert (after.price_minor, after.name, after.active) == (1990, "BAD-1", True)


async def test_the_product_editor_saves_the_shop_page_fields_and_the_shop_shows_them(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku(rt, code="PAGE-1")
    console = await operator(rt, client)
    form = {
        "name": "视频月卡",
        "description": "一个月会员",
        "usage": "打开 App，输入兑换码",
        "validity": "激活后 30 天",
        "delivery_promise": "付款后 5 分钟内发货",
        "category": "影音会员",
        "featured": "true",
        "sort_order": "3",
    }

    assert (await console.post(f"/admin/products/{sku.product_id}", form)).status_code == 303

    async with rt.db.read() as session:
        product = await catalog.get_product(session, sku.product_id)
        named = await categories.list_categories(session)
    assert (product.name, product.usage, product.delivery_promise, product.featured) == (
        "视频月卡",
        "打开 App，输入兑换码",
        "付款后 5 分钟内发货",
        True,
    )
    assert [(c.name, c.products) for c in named] == [("影音会员", 1)]
    shop = await client.get(f"/products/{sku.product_id}")
    assert "付款后 5 分钟内发货" in shop.text and "激活后 30 天" in shop.text


async def test_a_product_taken_off_sale_leaves_the_shop_and_comes_back(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku(rt, code="OFF-1")
    console = await operator(rt, client)

    await console.post(f"/admin/products/{sku.product_id}/sale", {"on_sale": "off"})
    assert (await client.get(f"/products/{sku.product_id}")).status_code == 404
    await console.post(f"/admin/products/{sku.product_id}/sale", {"on_sale": "on"})
    assert (await client.get(f"/products/{sku.product_id}")).status_code == 200


async def test_images_are_uploaded_reordered_and_removed(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku(rt, code="IMG-1")
    console = await operator(rt, client)
    path = f"/admin/products/{sku.product_id}/images"

    for _ in range(2):
        uploaded = await console.post(path, files={"file": ("p.jpg", photo(400, 300), "image/jpeg")})
        assert uploaded.status_code == 303
    first, second = await image_ids(rt, sku)
    assert (await console.post(f"/admin/images/{second}/move", {"to": "earlier"})).status_code == 303
    assert await image_ids(rt, sku) == [second, first]
    await console.post(f"/admin/images/{second}/remove")
    assert await image_ids(rt, sku) == [first]
    page = await console.get(f"/admin/products/{sku.product_id}")
    assert f'data-image="{first}"' in page.text

    not_a_picture = await console.post(path, files={"file": ("p.jpg", b"not an image", "image/jpeg")})
    assert not_a_picture.status_code == 415
    assert await image_ids(rt, sku) == [first]


async def image_ids(rt: Runtime, sku: GivenSku) -> list[int]:
    async with rt.db.read() as session:
        found = await catalog_images.images_of(session, [sku.product_id])
    return [image.id for image in found.get(sku.product_id, [])]


async def test_categories_are_created_listed_and_renamed_with_their_products(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku(rt, code="CAT-1")
    console = await operator(rt, client)
    await console.post(f"/admin/products/{sku.product_id}", {"name": "x", "category": "游戏"})
    assert (await console.post("/admin/categories", {"name": "礼品卡"})).status_code == 303

    taken = await console.post("/admin/categories", {"name": "礼品卡"})
    assert taken.status_code == 409
    async with rt.db.read() as session:
        games = next(c for c in await categories.list_categories(session) if c.name == "游戏")
    assert (await console.post(f"/admin/categories/{games.id}", {"name": "游戏点卡"})).status_code == 303

    async with rt.db.read() as session:
        named = [(c.name, c.products) for c in await categories.list_categories(session)]
        product = await catalog.get_product(session, sku.product_id)
    assert named == [("游戏点卡", 1), ("礼品卡", 0)]
    assert product.category == "游戏点卡"
    page = await console.get("/admin/categories")
    assert 'data-category="游戏点卡"' in page.text


async def test_the_sku_list_downloads_as_csv_and_xlsx_in_the_chosen_language(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_sku(rt, code="EXP-1", price_minor=1990)
    console = await operator(rt, client, "support")

    as_csv = await console.get("/admin/skus/export?format=csv")
    assert as_csv.status_code == 200
    assert as_csv.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][4:7] == ["编码", "SKU 名称", "售价"]
    [row] = [r for r in rows if r[4] == "EXP-1"]
    assert (row[6], row[10], row[11]) == ("¥19.90", "唯一码", "在售")

    as_xlsx = await console.get("/admin/skus/export?format=xlsx")
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    values = [[cell.value for cell in r] for r in sheet.iter_rows()]
    assert next(v for v in values if v[4] == "EXP-1")[6] == "¥19.90"
    assert "skus.xlsx" in as_xlsx.headers["content-disposition"]
