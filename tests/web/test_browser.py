"""A buyer in a real browser, at desktop and phone widths, in Chinese and in English.

Drives Debian's chromium through Playwright against a real uvicorn server on a fresh, migrated SQLite
database seeded with the demo catalog: home, search, product page, choose an option and a quantity, buy,
pay on the dev gateway, copy a code, and find the order again from another browser. Every page is
screenshotted (under KAQUAN_SCREENSHOTS when set, else the test's tmp dir) and checked for a header that
wraps and for anything wider than the screen.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from tests.support.server import served

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
CONTACT = "客服微信 kaquan-help"
WORDS = {
    "zh": {
        "search": "视频",
        "results": "“视频” 的搜索结果",
        "buy": "立即购买",
        "pending": "待支付",
        "delivered": "已发货",
        "copy": "复制",
        "copied": "已复制",
        "find": "查询",
        "usage": "使用说明",
        "sold_out": "已售罄",
    },
    "en": {
        "search": "VIP",
        "results": "Results for “VIP”",
        "buy": "Buy now",
        "pending": "Awaiting payment",
        "delivered": "Delivered",
        "copy": "Copy",
        "copied": "Copied",
        "find": "Find",
        "usage": "How to use",
        "sold_out": "Sold out",
    },
}


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real kaquan server for the module, over a fresh database holding the demo catalog."""
    with served(tmp_path_factory.mktemp("shop"), support_contact=CONTACT) as url:
        yield url


def fits(page: Page, width: int) -> None:
    """The header stays on one line and nothing is wider than the screen."""
    header = page.locator("header.top").bounding_box()
    assert header is not None and header["height"] < 64, f"the header wraps at {width}px: {header}"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the {width}px screen"


def shot(page: Page, folder: Path, name: str, width: int) -> None:
    fits(page, width)
    page.screenshot(path=str(folder / name), full_page=True)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("width", [1280, 390])
def test_a_buyer_finds_buys_pays_copies_a_code_and_finds_the_order_again(
    shop_url: str, browser: Browser, tmp_path: Path, width: int, lang: str
) -> None:
    words = WORDS[lang]
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{width}-{lang}"
    viewport: ViewportSize = {"width": width, "height": 844 if width < 800 else 900}
    locale = "zh-CN" if lang == "zh" else "en-US"
    buyer = browser.new_context(viewport=viewport, locale=locale, permissions=["clipboard-read", "clipboard-write"])
    page = buyer.new_page()

    page.goto(shop_url + "/")  # the browser's language picks the shop's
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
    expect(page.locator("#featured .card").first).to_be_visible()
    expect(page.locator('#products .card[data-product="7"]')).to_contain_text(words["sold_out"])
    shot(page, folder, f"{prefix}-1-home.png", width)

    page.locator("#q").fill(words["search"])
    page.locator("form.search button").click()
    expect(page.locator("#products h2")).to_have_text(words["results"])
    shot(page, folder, f"{prefix}-2-search.png", width)

    page.locator('#products .card[data-product="1"]').click()
    page.wait_for_url(f"{shop_url}/products/1")
    expect(page.locator("#usage")).to_be_visible()
    expect(page.locator("#support")).to_contain_text(CONTACT)
    shot(page, folder, f"{prefix}-3-product.png", width)

    page.locator('label.sku-option[data-sku="VIDEO-3M"]').click()
    page.locator('input[name="quantity"]').fill("2")
    page.get_by_role("button", name=words["buy"]).click()

    page.wait_for_url(re.compile(rf"{re.escape(shop_url)}/orders/\w+$"))
    expect(page.locator("#order-status")).to_have_text(words["pending"])
    expect(page.locator("#order-total")).to_have_text("¥108.00")
    expect(page.locator("#order-quantity")).to_have_text("2")
    number = page.locator("#order-number").inner_text().strip()
    secret = page.locator("#lookup-secret").inner_text().strip()
    page.locator("#copy-keep").click()
    expect(page.locator("#copy-keep")).to_have_text(words["copied"])
    kept = page.evaluate("navigator.clipboard.readText()")
    assert number in kept and secret in kept
    shot(page, folder, f"{prefix}-4-order-pending.png", width)

    page.locator("#pay").click()
    page.wait_for_url(f"{shop_url}/pay/*")
    expect(page.locator("#amount")).to_have_text("¥108.00")
    shot(page, folder, f"{prefix}-5-pay.png", width)
    page.locator("#choose-method").click()
    page.wait_for_url(f"{shop_url}/pay/dev/*")
    shot(page, folder, f"{prefix}-6-dev-gateway.png", width)
    page.locator("#confirm-pay").click()

    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text(words["delivered"])
    codes = [text.strip() for text in page.locator("#codes .secret").all_inner_texts()]
    assert len(codes) == 2 and all(len(code) == 16 for code in codes)
    first_copy = page.locator("#codes button.copy").first
    expect(first_copy).to_have_text(words["copy"])
    first_copy.click()
    expect(first_copy).to_have_text(words["copied"])
    assert page.evaluate("navigator.clipboard.readText()") == codes[0]
    expect(page.get_by_role("heading", name=words["usage"])).to_be_visible()
    expect(page.locator("#order-support")).to_contain_text(CONTACT)
    shot(page, folder, f"{prefix}-7-order-delivered.png", width)
    buyer.close()

    stranger = browser.new_context(viewport=viewport, locale="en-US")  # chooses its language by the switch
    page = stranger.new_page()
    page.goto(f"{shop_url}/lookup?lang={lang}")
    page.goto(f"{shop_url}/orders/{number}")
    page.wait_for_url(f"{shop_url}/lookup?number={number}")
    page.locator('input[name="secret"]').fill("WXYZ-WXYZ-WXYZ-WXYZ")
    page.get_by_role("button", name=words["find"]).click()
    expect(page.locator("#lookup-error")).to_be_visible()
    assert codes[0] not in page.content()
    shot(page, folder, f"{prefix}-8-lookup-refused.png", width)

    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="secret"]').fill(secret)
    page.get_by_role("button", name=words["find"]).click()
    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text(words["delivered"])
    assert [text.strip() for text in page.locator("#codes .secret").all_inner_texts()] == codes
    shot(page, folder, f"{prefix}-9-found-again.png", width)
    stranger.close()
