"""A buyer in a real browser: buy, pay on the dev gateway, see the codes, find the order from another browser.

Drives Debian's chromium through Playwright against a real uvicorn server on a
fresh, migrated SQLite database seeded with the demo catalog.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.server import served

pytestmark = pytest.mark.browser


@pytest.fixture
def shop_url(tmp_path: Path) -> Iterator[str]:
    """A real kaquan server on a free local port, over a fresh database holding the demo catalog."""
    with served(tmp_path) as url:
        yield url


def delivered_codes(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("#codes td.secret").all_inner_texts()]


def test_a_buyer_pays_sees_the_codes_and_finds_the_order_again_from_another_browser(
    shop_url: str, browser: Browser, tmp_path: Path
) -> None:
    buyer = browser.new_context()
    page = buyer.new_page()
    page.goto(shop_url + "/")
    video = page.locator('section.card[data-sku="VIDEO-1M"]')
    expect(video.locator(".price")).to_contain_text("CNY 19.90")
    expect(video.locator(".stock")).to_contain_text("60")

    video.locator('input[name="quantity"]').fill("1")
    video.get_by_role("button", name="Buy 购买").click()

    page.wait_for_url(f"{shop_url}/orders/*")
    expect(page.locator("#order-status")).to_have_text("pending_payment")
    number = page.locator("#order-number").inner_text().strip()
    secret = page.locator("#lookup-secret").inner_text().strip()
    assert page.url == f"{shop_url}/orders/{number}"
    assert secret

    page.locator("#pay").click()
    page.wait_for_url(f"{shop_url}/pay/*")
    page.screenshot(path=str(tmp_path / "pay-page.png"), full_page=True)
    page.locator("#choose-method").click()
    page.wait_for_url(f"{shop_url}/pay/dev/*")
    expect(page.locator("#amount")).to_have_text("CNY 19.90")
    page.locator("#confirm-pay").click()

    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text("delivered")
    codes = delivered_codes(page)
    assert len(codes) == 1
    assert len(codes[0]) == 16
    page.screenshot(path=str(tmp_path / "delivered-order.png"), full_page=True)
    buyer.close()

    stranger = browser.new_context()
    page = stranger.new_page()
    page.goto(f"{shop_url}/orders/{number}")
    page.wait_for_url(f"{shop_url}/lookup?number={number}")
    assert delivered_codes(page) == []

    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="secret"]').fill(secret)
    page.get_by_role("button", name="Find 查询").click()

    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text("delivered")
    assert delivered_codes(page) == codes

    other = browser.new_context()
    page = other.new_page()
    page.goto(f"{shop_url}/lookup")
    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="secret"]').fill("WXYZ-WXYZ-WXYZ-WXYZ")
    page.get_by_role("button", name="Find 查询").click()

    expect(page.locator("#lookup-error")).to_be_visible()
    assert page.url == f"{shop_url}/lookup"
    assert codes[0] not in page.content()
    stranger.close()
    other.close()
