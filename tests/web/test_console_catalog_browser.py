"""The catalog in a real browser, on a desktop (1280 px) and a phone (390 px): an operator edits a SKU's
price and takes another SKU off sale on the product page, and the shop shows the new price and no longer
offers the SKU taken off sale.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.console_browser import edit_on_the_product_page
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[str]:
    """A server with the demo catalog (the video product sells VIDEO-1M, VIDEO-3M, VIDEO-12M) and an operator `olga`."""

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "olga", "operator")

    with served(tmp_path, seed) as url:
        yield url


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise be drawn mid-page
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


@pytest.mark.parametrize(
    ("width", "height", "priced", "price", "taken_off"),
    [(1280, 900, "VIDEO-3M", "49.90", "VIDEO-12M"), (390, 844, "VIDEO-1M", "18.80", "VIDEO-3M")],
    ids=["desktop", "phone"],
)
def test_an_operator_edits_a_price_and_takes_a_sku_off_sale_and_the_shop_follows(
    shop: str, browser: Browser, tmp_path: Path, width: int, height: int, priced: str, price: str, taken_off: str
) -> None:
    url = shop
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(url + "/admin/login")
    page.locator('input[name="username"]').fill("olga")
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/**")

    product_id = edit_on_the_product_page(page, url, priced, price, taken_off)
    shot(page, tmp_path, f"console-product-editor-{width}.png")

    page.goto(f"{url}/products/{product_id}")
    expect(page.locator(f'label.sku-option[data-sku="{priced}"] .sku-price')).to_contain_text(f"¥{price}")
    expect(page.locator(f'label.sku-option[data-sku="{taken_off}"]')).to_have_count(0)
    shot(page, tmp_path, f"shop-after-price-edit-{width}.png")

    page.goto(url + "/admin/products")
    row = page.locator(f'#skus tr[data-sku="{taken_off}"]')
    expect(row.locator(".sale.off")).to_be_visible()
    page.locator("#lang-en").click()
    expect(page.locator(f'#skus tr[data-sku="{taken_off}"] .sale.off')).to_have_text("Off sale")
    expect(page.locator(f'#skus tr[data-sku="{priced}"]')).to_contain_text(f"¥{price}")
    shot(page, tmp_path, f"console-products-en-{width}.png")
