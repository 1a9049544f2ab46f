"""The storefront a buyer browses, through HTTP: home, search, categories, product pages, language, words.

Chinese is the default, English one click away; money reads ¥19.90, times carry the merchant's zone, stock
reads as in stock / low / sold out and never as a count, and no page shows a message key or a raw value.
"""

import re
import secrets

import httpx
import pytest
from tests.support.builders import GivenSku, buy, given_codes, given_sku, random_codes
from tests.support.http import BROWSER
from tests.support.images import photo
from tests.support.pages import problems, visible_text
from tests.support.paying import dev_pay_link

from kaquan.catalog import images
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductUpdate
from kaquan.runtime import Runtime

CONTACT = "客服微信 kq-help"


@pytest.fixture(autouse=True)
def _support_contact(rt: Runtime) -> None:
    rt.settings.support_contact = CONTACT


async def stocked(rt: Runtime, count: int, **sku: object) -> GivenSku:
    given = await given_sku(rt, **sku)  # type: ignore[arg-type]
    if count:
        await given_codes(rt, given, random_codes(count))
    return given


async def describe(rt: Runtime, sku: GivenSku, **fields: object) -> None:
    async with rt.db.transaction() as session:
        await catalog.update_product(session, sku.product_id, ProductUpdate(**fields), actor="test")


def card(page: str, product_id: int, shelf: str = "products") -> str:
    section = re.search(rf'<section class="shelf" id="{shelf}">(.*?)</section>', page, re.S)
    assert section, f"no shelf #{shelf}"
    found = re.search(rf'<a class="card" href="/products/{product_id}".*?</a>', section.group(1), re.S)
    assert found, f"no card for product {product_id} on #{shelf}"
    return visible_text(found.group(0)) + found.group(0)


async def shelf_ids(client: httpx.AsyncClient, url: str, shelf: str = "products") -> list[int]:
    page = (await client.get(url, headers=BROWSER)).text
    section = re.search(rf'<section class="shelf" id="{shelf}">(.*?)</section>', page, re.S)
    return [int(n) for n in re.findall(r'data-product="(\d+)"', section.group(1))] if section else []


# The home page ------------------------------------------------------------------------------------


async def test_the_home_page_shows_each_product_with_its_lowest_price_in_yuan_and_a_stock_word(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    plenty = await stocked(rt, 12, price_minor=1990)
    few = await stocked(rt, 3, price_minor=123456)
    none = await stocked(rt, 0, price_minor=500)

    page = (await client.get("/", headers=BROWSER)).text

    assert "¥19.90 起" in card(page, plenty.product_id) and "有货" in card(page, plenty.product_id)
    assert "¥1,234.56 起" in card(page, few.product_id) and "库存紧张" in card(page, few.product_id)
    assert "已售罄" in card(page, none.product_id)
    assert "12" not in visible_text(page) and "CNY" not in page


async def test_a_product_off_sale_or_without_a_sku_on_sale_is_not_shown(rt: Runtime, client: httpx.AsyncClient) -> None:
    shown = await stocked(rt, 2)
    hidden = await stocked(rt, 2)
    await describe(rt, hidden, active=False)

    assert await shelf_ids(client, "/") == [shown.product_id]
    assert (await client.get(f"/products/{hidden.product_id}", headers=BROWSER)).status_code == 404


async def test_search_finds_products_by_product_name_and_by_sku_name(rt: Runtime, client: httpx.AsyncClient) -> None:
    video = await stocked(rt, 2)
    game = await stocked(rt, 2)
    await describe(rt, video, name="星河视频 VIP 会员")
    await describe(rt, game, name="幻境游戏点卡")
    async with rt.db.transaction() as session:
        sku = await catalog.get_sku(session, game.id)
        sku.name = "500 点 Points"

    assert await shelf_ids(client, "/?q=视频") == [video.product_id]
    assert await shelf_ids(client, "/?q=points") == [game.product_id]
    assert await shelf_ids(client, "/?q=vip%20星河") == [video.product_id]
    nothing = (await client.get("/?q=不存在的东西", headers=BROWSER)).text
    assert await shelf_ids(client, "/?q=不存在的东西") == []
    assert "没有找到相关商品" in nothing and "“不存在的东西” 的搜索结果" in re.sub(r"<[^>]+>", "", nothing)


async def test_categories_filter_and_featured_products_lead(rt: Runtime, client: httpx.AsyncClient) -> None:
    video = await stocked(rt, 2)
    music = await stocked(rt, 2)
    game = await stocked(rt, 2)
    await describe(rt, video, category="影音会员")
    await describe(rt, music, category="影音会员", featured=True)
    await describe(rt, game, category="游戏点卡", sort_order=-1)

    page = (await client.get("/", headers=BROWSER)).text

    assert re.findall(r'class="chip[^"]*">([^<]+)<', page) == ["全部", "影音会员", "游戏点卡"]
    assert await shelf_ids(client, "/", "featured") == [music.product_id]
    assert await shelf_ids(client, "/") == [music.product_id, game.product_id, video.product_id]
    assert await shelf_ids(client, "/?category=影音会员") == [music.product_id, video.product_id]


async def test_best_sellers_rank_products_by_units_delivered(rt: Runtime, client: httpx.AsyncClient) -> None:
    once = await stocked(rt, 5)
    twice = await stocked(rt, 5)
    never = await stocked(rt, 5)
    assert not (await buy(rt, once)).error
    assert not (await buy(rt, twice, 2)).error

    assert await shelf_ids(client, "/", "best-sellers") == [twice.product_id, once.product_id]
    assert never.product_id not in await shelf_ids(client, "/", "best-sellers")
    assert "已售 2" in card((await client.get("/", headers=BROWSER)).text, twice.product_id, "best-sellers")


# The product page ---------------------------------------------------------------------------------


async def test_the_product_page_shows_what_a_buyer_needs_before_paying(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await stocked(rt, 3, price_minor=1990)
    await describe(rt, sku, description="全站 VIP", usage="打开 App 输入卡密", validity="兑换后 31 天", category="影音")
    async with rt.db.transaction() as session:
        image = await images.add_image(session, sku.product_id, photo(), actor="test")

    page = (await client.get(f"/products/{sku.product_id}", headers=BROWSER)).text

    assert f'<input type="radio" name="sku" value="{sku.code}" checked' in page
    assert 'name="quantity"' in page and 'action="/orders"' in page
    assert "¥19.90" in page and "库存紧张" in page
    for words in (
        "全站 VIP",
        "使用说明",
        "打开 App 输入卡密",
        "兑换后 31 天",
        "自动发货 · 付款后立即显示卡密",
        CONTACT,
    ):
        assert words in page
    assert f'src="/images/{image.id}/640.jpg"' in page and f"/images/{image.id}/1200.jpg 1200w" in page
    assert 'id="payment-methods"' in page and "测试支付" in page and "<svg" in page


async def test_a_sold_out_option_cannot_be_chosen(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await stocked(rt, 0)

    page = (await client.get(f"/products/{sku.product_id}", headers=BROWSER)).text

    assert re.search(rf'value="{sku.code}"\s+disabled', page)
    assert 'id="buy-button"' not in page and "已售罄" in page


@pytest.mark.parametrize("path", ["/products/999999", "/products/0", "/products/abc", "/products/99999999999999999999"])
async def test_an_unknown_product_is_a_page_in_the_buyers_language(client: httpx.AsyncClient, path: str) -> None:
    zh = await client.get(path, headers=BROWSER)
    en = await client.get(path + "?lang=en", headers=BROWSER)

    assert zh.status_code in (404, 422) and en.status_code == zh.status_code
    assert "出错了" in zh.text and "Something is not right" in en.text
    assert problems(zh.text, "zh") == [] and problems(en.text, "en") == []


async def test_an_image_is_served_with_a_long_cache_and_nothing_else_is(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await stocked(rt, 1)
    async with rt.db.transaction() as session:
        image = await images.add_image(session, sku.product_id, photo(), actor="test")

    served = await client.get(f"/images/{image.id}/320.jpg")
    missing = await client.get(f"/images/{image.id + 1}/320.jpg")

    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.content.startswith(b"\xff\xd8")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "image_not_found"


# Language -----------------------------------------------------------------------------------------


async def test_chinese_is_the_default_and_lang_en_switches_and_is_remembered(client: httpx.AsyncClient) -> None:
    default = await client.get("/", headers=BROWSER)
    switched = await client.get("/?lang=en", headers=BROWSER)
    later = await client.get("/lookup", headers=BROWSER)

    assert '<html lang="zh-CN">' in default.text and "搜索" in default.text
    assert '<html lang="en">' in switched.text and "Search" in switched.text
    assert switched.cookies["lang"] == "en"
    assert '<html lang="en">' in later.text and "Find my order" in later.text


async def test_a_browser_asking_for_english_first_gets_english_until_it_chooses(rt: Runtime) -> None:
    from kaquan.web.app import create_app

    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as fresh:
        english = await fresh.get("/", headers=BROWSER | {"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"})
        chinese = await fresh.get("/", headers=BROWSER | {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
        chosen = await fresh.get("/?lang=zh", headers=BROWSER | {"Accept-Language": "en-US"})
        after = await fresh.get("/", headers=BROWSER | {"Accept-Language": "en-US"})

    assert '<html lang="en">' in english.text and '<html lang="zh-CN">' in chinese.text
    assert '<html lang="zh-CN">' in chosen.text and '<html lang="zh-CN">' in after.text


async def test_an_unknown_language_falls_back_to_chinese(client: httpx.AsyncClient) -> None:
    page = await client.get("/?lang=xx", headers=BROWSER)

    assert '<html lang="zh-CN">' in page.text and "lang" not in page.cookies


# The order page -----------------------------------------------------------------------------------


async def order_page(client: httpx.AsyncClient, sku: GivenSku, quantity: int = 1) -> tuple[str, httpx.Response]:
    form = {"sku": sku.code, "quantity": str(quantity), "idempotency_key": secrets.token_hex(8)}
    page = await client.post("/orders", data=form, headers=BROWSER, follow_redirects=True)
    assert page.status_code == 200, page.text
    return page.url.path.removeprefix("/orders/"), page


async def test_the_order_page_says_what_was_bought_in_words_and_times_in_the_merchants_zone(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await stocked(rt, 5, price_minor=1990)
    await describe(rt, sku, name="星河视频 VIP 会员", usage="打开 App 输入卡密")

    _, page = await order_page(client, sku, 2)
    text = visible_text(page.text)

    assert "待支付" in text and 'data-status="pending_payment"' in page.text
    assert "星河视频 VIP 会员" in page.text and sku.code in page.text
    assert "¥19.90" in text and "¥39.80" in text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\+8", text)
    assert CONTACT in page.text


async def test_a_delivered_order_shows_copy_buttons_and_the_usage_instructions(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await stocked(rt, 2)
    await describe(rt, sku, usage="打开 App 输入卡密")
    _, page = await order_page(client, sku, 2)
    pay_url = re.search(r'id="pay" href="([^"]+)"', page.text)
    assert pay_url
    gateway = await dev_pay_link(client, pay_url.group(1).replace("&amp;", "&"))
    delivered = await client.post(gateway, headers=BROWSER, follow_redirects=True)

    assert 'data-status="delivered"' in delivered.text and "已发货" in delivered.text
    secrets_shown = re.findall(r'<span class="mono value secret">([^<]+)</span>', delivered.text)
    assert len(secrets_shown) == 2
    for secret in secrets_shown:
        assert f'data-copy="{secret}"' in delivered.text
    assert "打开 App 输入卡密" in delivered.text and '<script src="/static/shop.js"' in delivered.text


# Every page, both languages -----------------------------------------------------------------------


async def test_every_shop_page_reads_in_one_language_without_keys_raw_values_or_escapes(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await stocked(rt, 3)
    await stocked(rt, 0)
    await describe(rt, sku, name="星河视频", category="影音会员", usage="打开 App", validity="一年", featured=True)
    assert not (await buy(rt, sku)).error
    number, pending = await order_page(client, sku)
    pay_url = re.search(r'id="pay" href="([^"]+)"', pending.text)
    assert pay_url
    pay_path = pay_url.group(1).replace("&amp;", "&")
    dev_path = await dev_pay_link(client, pay_path)
    paths = [
        "/",
        "/?q=星河",
        "/?q=nothing-matches",
        "/?category=影音会员",
        f"/products/{sku.product_id}",
        f"/products/{sku.product_id + 1000}",
        f"/orders/{number}",
        "/lookup",
        "/account/sign-in",
        pay_path,
        dev_path,
    ]
    for lang in ("zh", "en"):
        client.cookies.set("lang", lang)
        for path in paths:
            page = await client.get(path, headers=BROWSER)
            assert problems(page.text, lang) == [], f"{path} in {lang}"
        await client.post(dev_path, headers=BROWSER)
        delivered = await client.get(f"/orders/{number}", headers=BROWSER)
        failed = await client.post("/lookup", data={"number": number, "secret": "WRONG"}, headers=BROWSER)
        refused = await client.post(
            "/orders", data={"sku": sku.code, "quantity": "0", "idempotency_key": "k"}, headers=BROWSER
        )
        for page in (delivered, failed, refused):
            assert problems(page.text, lang) == [], f"{page.request.url} in {lang}"
