"""风控审核 in a real browser on a phone (390 px wide), in Chinese and English: held orders are cards with
their score, reasons and buyer's history; an operator marks one as fraud and it leaves the queue.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from tests.support.builders import given_sku_with_codes
from tests.support.identity import PASSWORD, given_user
from tests.support.reviews import given_held_order_placed, given_review_rule
from tests.support.server import served

from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A server with an operator `olga` and two held orders by one buyer: one paid, one not yet."""
    held: list[str] = []

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "olga", "operator")
        sku = await given_sku_with_codes(rt, 6, price_minor=4990)
        await given_review_rule(rt)
        held.append(await given_held_order_placed(rt, sku, paid=False))
        held.append(await given_held_order_placed(rt, sku, paid=True))

    with served(tmp_path, seed) as url:
        yield url, held


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url + "/admin/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/**")


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_an_operator_on_a_phone_reviews_held_orders_and_marks_one_as_fraud(
    console: tuple[str, list[str]], browser: Browser, tmp_path: Path
) -> None:
    url, (unpaid, paid) = console
    page = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
    sign_in(page, url, "olga")
    page.goto(f"{url}/lang/zh?next=/admin/risk/review")
    page.wait_for_url(f"{url}/admin/risk/review")

    card = page.locator(f"#review-{paid}")
    expect(page.locator(".review-card")).to_have_count(2)
    expect(card).to_contain_text("已付款，等待审核后发货")
    expect(card).to_contain_text("¥99.80")
    expect(card).to_contain_text("rule:big orders")
    expect(card).to_contain_text("同一联系方式的其他订单 1 笔")
    expect(page.locator(f"#review-{unpaid}")).to_contain_text("尚未付款")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone: {width}px"
    assert (card.bounding_box() or {"width": 0})["width"] <= PHONE["width"]
    assert shot(page, tmp_path, "risk-review-phone-zh.png").stat().st_size > 0

    card.locator('input[name="reason"]').fill("盗刷：持卡人来电否认")
    card.locator("button.fraud").click()
    page.wait_for_url(f"{url}/admin/risk/review?**")
    expect(page.locator("#verdict-notice")).to_contain_text(f"订单 {paid} 已标记为欺诈")
    expect(page.locator(".review-card")).to_have_count(1)

    page.goto(f"{url}/lang/en?next=/admin/risk/review")
    page.wait_for_url(f"{url}/admin/risk/review")
    expect(page.locator("h1")).to_have_text("Risk review")
    expect(page.locator(f"#review-{unpaid}")).to_contain_text("Not paid yet; when paid it still waits for approval.")
    expect(page.locator(f"#review-{unpaid}")).to_contain_text("1 earlier reviews")
    shot(page, tmp_path, "risk-review-phone-en.png")
